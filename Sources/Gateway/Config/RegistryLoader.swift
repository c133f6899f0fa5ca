public import Foundation
public import PluginAPI
import ConfigYAML

/// Reads connections.yaml into a validated ``RegistryPlan``: parse → interpolate → strict
/// decode → checks of names, kinds, URLs, routes and references → each plugin decodes and
/// validates its own `auth` parameters. Every problem names file, line and column.
public struct RegistryLoader: Sendable {
    public var plugins: PluginRegistry
    public var environment: [String: String]

    public init(plugins: PluginRegistry, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.plugins = plugins
        self.environment = environment
    }

    /// Loads and validates the file at `path`.
    public func load(path: String) throws(ConfigErrors) -> RegistryPlan {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw ConfigErrors([ConfigError(
                file: path, location: nil, message: exists ? "cannot read the file" : "no such file",
                hint: exists ? "check its permissions" : "pass --config with the path of your connections.yaml")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigErrors([ConfigError(file: path, location: nil, message: "the file is not UTF-8 text")])
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try load(text: text, file: path, baseDirectory: base)
    }

    /// Loads and validates YAML text; `file` is used in messages, `baseDirectory` for `file:` secrets.
    public func load(text: String, file: String, baseDirectory: String) throws(ConfigErrors) -> RegistryPlan {
        let root: ConfigNode
        let config: RegistryFileConfig
        let decoder = ConfigDecoder(file: file, baseDirectory: baseDirectory)
        do {
            let parsed = try YAMLSource.parse(text, file: file)
            root = try Interpolation(environment: environment, file: file).apply(parsed)
            config = try decoder.decode(RegistryFileConfig.self, from: root)
        } catch {
            throw ConfigErrors([error])
        }
        var validation = RegistryValidation(file: file, root: root, plugins: plugins, decoder: decoder, environment: environment)
        let plan = validation.validate(config)
        if !validation.errors.isEmpty { throw ConfigErrors(validation.errors) }
        return plan
    }
}
