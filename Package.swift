// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["SwitchboardCLI"]),
        // bench/run only: the server libraries alone, answering from memory (the ceiling).
        .executable(name: "bench-ceiling", targets: ["BenchCeiling"]),
        .library(name: "PluginAPI", targets: ["PluginAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    ],
    targets: [
        // What a plugin sees. No Hummingbird, no Gateway.
        .target(
            name: "PluginAPI",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // JWT / JWKS verification shared by every service.
        .target(
            name: "OAuthCore",
            dependencies: [
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Built-in auth-strategy plugins: one target each, PluginAPI (+ OAuthCore) only.
        .target(name: "NoneStrategy", dependencies: ["PluginAPI"], path: "Plugins/NoneStrategy", swiftSettings: strict),
        // Shared by the OAuth plugins: agent key loading, token endpoint discovery, error mapping.
        .target(name: "OAuthPluginSupport", dependencies: ["PluginAPI", "OAuthCore"], path: "Plugins/OAuthPluginSupport", swiftSettings: strict),
        .target(name: "IDJAGStrategy", dependencies: ["PluginAPI", "OAuthCore", "OAuthPluginSupport"], path: "Plugins/IDJAGStrategy", swiftSettings: strict),
        .target(name: "OAuthSTSStrategy", dependencies: ["PluginAPI", "OAuthCore", "OAuthPluginSupport"], path: "Plugins/OAuthSTSStrategy", swiftSettings: strict),
        // The list of built-in plugins; the only place that names them all.
        .target(name: "StandardPlugins", dependencies: ["PluginAPI", "NoneStrategy", "IDJAGStrategy", "OAuthSTSStrategy"], swiftSettings: strict),
        .target(
            name: "Gateway",
            dependencies: [
                "PluginAPI", "OAuthCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The Okta-compatible identity provider for development and tests.
        .target(
            name: "IdentityProvider",
            dependencies: [
                "OAuthCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Any JSON value (Codable, Sendable) and a fast writer; shared by the servers.
        .target(name: "SwitchboardJSON", swiftSettings: strict),
        // The MCP Streamable HTTP server side shared by todo0 and the ISV stand-in.
        .target(
            name: "MCPServerKit",
            dependencies: [
                "OAuthCore", "SwitchboardJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // todo0: an MCP server (Streamable HTTP) and REST API for per-user todos on SQLite.
        .target(
            name: "Todo0",
            dependencies: [
                "OAuthCore", "MCPServerKit", "SwitchboardJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The offline third-party app for OAuth STS (GitHub REST subset + MCP).
        .target(
            name: "ISVStandIn",
            dependencies: [
                "OAuthCore", "MCPServerKit", "SwitchboardJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The LLM adapter: an Anthropic Messages API in front of Anthropic, Bedrock or the offline planner.
        .target(
            name: "LLMAdapter",
            dependencies: [
                "SwitchboardJSON",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // agent0: the web app (sign-in, chat with tools through the gateway, the connections panel).
        .target(
            name: "Agent0",
            dependencies: [
                "OAuthCore", "SwitchboardJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["README.md"],
            resources: [.copy("Public")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SwitchboardCLI",
            dependencies: [
                "Gateway", "StandardPlugins", "PluginAPI", "IdentityProvider", "Todo0", "ISVStandIn", "LLMAdapter", "Agent0",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "BenchCeiling",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Test helpers: start services on free loopback ports, real keys, real JWKS.
        .target(
            name: "SwitchboardTesting",
            dependencies: [
                "OAuthCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Tests/SwitchboardTesting",
            swiftSettings: strict
        ),
        .testTarget(name: "PluginAPITests", dependencies: ["PluginAPI"], swiftSettings: strict),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "Gateway", "StandardPlugins", "PluginAPI", "IdentityProvider", "Todo0", "ISVStandIn", "OAuthCore", "SwitchboardTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "Todo0Tests",
            dependencies: [
                "Todo0", "OAuthCore", "SwitchboardTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IdentityProviderTests",
            dependencies: [
                "IdentityProvider", "OAuthCore", "SwitchboardTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LLMAdapterTests",
            dependencies: [
                "LLMAdapter", "SwitchboardJSON", "SwitchboardTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "OAuthCoreTests", dependencies: ["OAuthCore", "SwitchboardTesting"], swiftSettings: strict),
        .testTarget(
            name: "Agent0Tests",
            dependencies: [
                "Agent0", "Gateway", "StandardPlugins", "IdentityProvider", "Todo0", "OAuthCore", "SwitchboardJSON", "SwitchboardTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "StandardPlugins", "PluginAPI", "SwitchboardTesting", "OAuthCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: strict
        ),
    ]
)
