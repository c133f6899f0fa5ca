public import PluginAPI

/// The small builder for ``ConnectionDescriptor``s: what the gateway derives from a
/// connections.yaml entry (the resource indicator defaults to `upstream`, the route to
/// `/mcp/{name}` or `/rest/{name}`).
public enum TestConnection {
    /// An `authorization_server` connection (referenced by e.g. idjag's `authorization_server`).
    public static func authorizationServer(_ name: String, issuer: String, title: String? = nil) -> ConnectionDescriptor {
        ConnectionDescriptor(name: name, kind: .authorizationServer, title: title ?? name, issuer: issuer)
    }

    /// An `mcp_server` connection.
    public static func mcpServer(
        _ name: String, upstream: String, resource: String? = nil, route: String? = nil, title: String? = nil, registrationID: String? = nil
    ) -> ConnectionDescriptor {
        upstreamConnection(name, kind: .mcpServer, upstream: upstream, resource: resource, route: route, title: title, registrationID: registrationID)
    }

    /// An `application` (REST) connection.
    public static func application(
        _ name: String, upstream: String, resource: String? = nil, route: String? = nil, title: String? = nil, registrationID: String? = nil
    ) -> ConnectionDescriptor {
        upstreamConnection(name, kind: .application, upstream: upstream, resource: resource, route: route, title: title, registrationID: registrationID)
    }

    static func upstreamConnection(
        _ name: String, kind: ConnectionKind, upstream: String?, resource: String?, route: String?, title: String?, registrationID: String?
    ) -> ConnectionDescriptor {
        ConnectionDescriptor(
            name: name, kind: kind, title: title ?? name, upstream: upstream, resourceIndicator: resource ?? upstream,
            route: route ?? (kind == .mcpServer ? "/mcp/" : "/rest/") + name, registrationID: registrationID)
    }
}
