public import PluginAPI
import IDJAGStrategy
import NoneStrategy
import OAuthSTSStrategy

/// The auth-strategy plugins that ship with Switchboard. This is the only list of them:
/// adding a plugin means adding its target and one line here, and no gateway file.
public enum StandardPlugins {
    /// A registry holding every built-in plugin.
    public static func registry() -> PluginRegistry {
        var registry = PluginRegistry()
        do {
            try registry.register(NoneStrategyFactory())
            try registry.register(IDJAGStrategyFactory())
            try registry.register(OAuthSTSStrategyFactory())
        } catch {
            preconditionFailure("\(error)")
        }
        return registry
    }
}
