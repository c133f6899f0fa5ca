// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// Every product a target may depend on, named once. A target lists exactly what its files
// import (scripts/check-imports, run by scripts/test, keeps this true).
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let asyncHTTPClient: Target.Dependency = .product(name: "AsyncHTTPClient", package: "async-http-client")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")
let cryptoExtras: Target.Dependency = .product(name: "_CryptoExtras", package: "swift-crypto")
let grdb: Target.Dependency = .product(name: "GRDB", package: "GRDB.swift")
let grdbSQLite: Target.Dependency = .product(name: "GRDBSQLite", package: "GRDB.swift")
let httpTypes: Target.Dependency = .product(name: "HTTPTypes", package: "swift-http-types")
let hummingbird: Target.Dependency = .product(name: "Hummingbird", package: "hummingbird")
let hummingbirdCore: Target.Dependency = .product(name: "HummingbirdCore", package: "hummingbird")
let jwtKit: Target.Dependency = .product(name: "JWTKit", package: "jwt-kit")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let coreMetrics: Target.Dependency = .product(name: "CoreMetrics", package: "swift-metrics")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")
let otel: Target.Dependency = .product(name: "OTel", package: "swift-otel")
let postgresNIO: Target.Dependency = .product(name: "PostgresNIO", package: "postgres-nio")
let tracing: Target.Dependency = .product(name: "Tracing", package: "swift-distributed-tracing")
let instrumentation: Target.Dependency = .product(name: "Instrumentation", package: "swift-distributed-tracing")
let w3cTraceContext: Target.Dependency = .product(name: "W3CTraceContext", package: "swift-w3c-trace-context")
let nioConcurrencyHelpers: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let nioHTTPTypes: Target.Dependency = .product(name: "NIOHTTPTypes", package: "swift-nio-extras")
let nioHTTPTypesHTTP1: Target.Dependency = .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let unixSignals: Target.Dependency = .product(name: "UnixSignals", package: "swift-service-lifecycle")
let yams: Target.Dependency = .product(name: "Yams", package: "Yams")

let package = Package(
    name: "Switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["SwitchboardCLI"]),
        .executable(name: "switchboard-fuzz", targets: ["SwitchboardFuzz"]),
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
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP over HTTP only: the gRPC exporter (a default trait) adds minutes of build.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // What a plugin sees. No Hummingbird, no Gateway.
        .target(
            name: "PluginAPI",
            dependencies: [asyncHTTPClient, httpTypes, logging],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Tests a plugin without a gateway: fixtures, validation, a provisioned strategy, test clock, captured log.
        .target(
            name: "PluginTestKit",
            dependencies: ["ConfigYAML", "PluginAPI", asyncHTTPClient, httpTypes, logging],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // JWT / JWKS verification shared by every service.
        .target(
            name: "OAuthCore",
            dependencies: ["SwitchboardJSON", asyncHTTPClient, crypto, cryptoExtras, jwtKit, logging, nioCore],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Built-in auth-strategy plugins: one target each, PluginAPI (+ OAuthCore) only.
        .target(name: "NoneStrategy", dependencies: ["PluginAPI"], path: "Plugins/NoneStrategy", swiftSettings: strict),
        // Shared by the OAuth plugins: agent key loading, token endpoint discovery, error mapping.
        .target(name: "OAuthPluginSupport", dependencies: ["OAuthCore", "PluginAPI"], path: "Plugins/OAuthPluginSupport", swiftSettings: strict),
        .target(name: "IDJAGStrategy", dependencies: ["OAuthCore", "OAuthPluginSupport", "PluginAPI"], path: "Plugins/IDJAGStrategy", swiftSettings: strict),
        .target(name: "OAuthSTSStrategy", dependencies: ["OAuthCore", "OAuthPluginSupport", "PluginAPI"], path: "Plugins/OAuthSTSStrategy", swiftSettings: strict),
        // The list of built-in plugins; the only place that names them all.
        .target(name: "StandardPlugins", dependencies: ["IDJAGStrategy", "NoneStrategy", "OAuthSTSStrategy", "PluginAPI"], exclude: ["README.md"], swiftSettings: strict),
        // connections.yaml's YAML reader (text → ConfigNode with line:column), shared by the
        // gateway and PluginTestKit.
        .target(name: "ConfigYAML", dependencies: ["PluginAPI", yams], exclude: ["README.md"], swiftSettings: strict),
        // The proxy's HTTP/1.1 client for plain-HTTP upstreams (its own keep-alive pool and
        // exchange handler on SwiftNIO), AsyncHTTPClient for HTTPS ones. Knows nothing of the gateway.
        .target(
            name: "Upstream",
            dependencies: [asyncHTTPClient, nioCore, nioHTTP1, nioPosix],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "ConfigYAML", "OAuthCore", "OTLPTracing", "PluginAPI", "SwitchboardJSON", "Upstream", asyncHTTPClient, coreMetrics, grdb, grdbSQLite, httpTypes, hummingbird,
                hummingbirdCore, logging, nioCore, nioHTTP1, nioHTTPTypes, nioHTTPTypesHTTP1, nioPosix, prometheus, tracing,
                serviceLifecycle, unixSignals,
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // The Okta-compatible identity provider for development and tests.
        .target(
            name: "IdentityProvider",
            dependencies: [
                "OAuthCore", "SwitchboardJSON", crypto, grdb, httpTypes, hummingbird, logging, nioCore, yams,
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Any JSON value (Codable, Sendable) and a fast writer, and the SSE framing MCP carries
        // it in; shared by the servers and the gateway.
        .target(name: "SwitchboardJSON", exclude: ["README.md"], swiftSettings: strict),
        // The MCP Streamable HTTP server side shared by todo0 and the ISV stand-in.
        .target(
            name: "MCPServerKit",
            dependencies: [
                "OAuthCore", "SwitchboardJSON", asyncHTTPClient, httpTypes, hummingbird, logging, nioCore, serviceLifecycle,
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // todo0: an MCP server (Streamable HTTP) and REST API for per-user todos on SQLite.
        .target(
            name: "Todo0",
            dependencies: [
                "MCPServerKit", "SwitchboardJSON", asyncHTTPClient, grdb, httpTypes, hummingbird, logging, nioCore,
                serviceLifecycle, tracing,
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // The offline third-party app for OAuth STS (GitHub REST subset + MCP).
        .target(
            name: "ISVStandIn",
            dependencies: [
                "MCPServerKit", "SwitchboardJSON", asyncHTTPClient, grdb, httpTypes, hummingbird, logging, nioCore,
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // The LLM adapter: an Anthropic Messages API in front of Anthropic, Bedrock or the offline planner.
        .target(
            name: "LLMAdapter",
            dependencies: [
                "SwitchboardJSON", asyncHTTPClient, crypto, httpTypes, hummingbird, logging, nioCore, nioHTTP1,
                serviceLifecycle,
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // agent0: the web app (sign-in, chat with tools through the gateway, the connections panel).
        .target(
            name: "Agent0",
            dependencies: [
                "OAuthCore", "SwitchboardJSON", asyncHTTPClient, crypto, httpTypes, hummingbird, logging, nioCore,
                nioHTTP1,
            ],
            exclude: ["README.md"],
            resources: [.copy("Public")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SwitchboardCLI",
            dependencies: [
                "Agent0", "Gateway", "ISVStandIn", "IdentityProvider", "LLMAdapter", "PluginAPI", "PostgresState", "StandardPlugins",
                "OTLPTracing", "SwitchboardJSON", "TenantTools", "Todo0", argumentParser, coreMetrics, hummingbird, logging, otel, serviceLifecycle, tracing,
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Replicas' shared state (`gateway.state: postgres://…`): credentials sealed with AES-GCM, leases, migrations.
        .target(
            name: "PostgresState",
            dependencies: ["Gateway", "PluginAPI", crypto, httpTypes, logging, nioCore, postgresNIO, serviceLifecycle],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Tenant tooling: `switchboard doctor` (live checks of a connections.yaml against its IdP and servers).
        .target(
            name: "TenantTools",
            dependencies: ["Gateway", "OAuthCore", "PluginAPI", "SwitchboardJSON", asyncHTTPClient, nioCore, nioHTTP1],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // The processes' OpenTelemetry tracer: OTLP/HTTP export without a task hand-off per span.
        .target(
            name: "OTLPTracing",
            dependencies: [asyncHTTPClient, instrumentation, logging, nioCore, serviceLifecycle, tracing, w3cTraceContext],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Fuzz targets for the parsers that read attacker input (scripts/fuzz; debug only).
        .executableTarget(
            name: "SwitchboardFuzz",
            dependencies: ["Agent0", "Gateway", "IdentityProvider", "StandardPlugins", "SwitchboardJSON"],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "BenchCeiling",
            dependencies: [asyncHTTPClient, hummingbird, nioCore, nioHTTP1, nioPosix],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Test helpers: start services on free loopback ports, real keys, real JWKS.
        .target(
            name: "SwitchboardTesting",
            dependencies: [
                "OAuthCore", "PluginTestKit", asyncHTTPClient, crypto, cryptoExtras, httpTypes, hummingbird, logging, nioCore,
                nioHTTP1, nioPosix,
            ],
            path: "Tests/SwitchboardTesting",
            swiftSettings: strict
        ),
        // Test helpers that run the real services in-process (the development IdP, todo0).
        .target(
            name: "SystemTesting",
            dependencies: [
                "IdentityProvider", "PluginAPI", "SwitchboardTesting", "Todo0", logging, serviceLifecycle,
            ],
            path: "Tests/SystemTesting",
            swiftSettings: strict
        ),
        .testTarget(name: "PluginAPITests", dependencies: ["PluginAPI"], swiftSettings: strict),
        .testTarget(name: "SwitchboardJSONTests", dependencies: ["SwitchboardJSON"], swiftSettings: strict),
        .testTarget(name: "OTLPTracingTests", dependencies: ["OTLPTracing", instrumentation, logging, tracing, w3cTraceContext], swiftSettings: strict),
        // One per plugin, through PluginTestKit; the OAuth ones against the real development IdP.
        .testTarget(name: "NoneStrategyTests", dependencies: ["NoneStrategy", "PluginAPI", "PluginTestKit"], swiftSettings: strict),
        .testTarget(
            name: "IDJAGStrategyTests",
            dependencies: [
                "IDJAGStrategy", "OAuthCore", "PluginAPI", "PluginTestKit", "SystemTesting", asyncHTTPClient, crypto,
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OAuthSTSStrategyTests",
            dependencies: [
                "OAuthCore", "OAuthSTSStrategy", "PluginAPI", "PluginTestKit", "SystemTesting", asyncHTTPClient,
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "Gateway", "ISVStandIn", "IdentityProvider", "OAuthCore", "PluginAPI", "StandardPlugins",
                "SwitchboardTesting", "SystemTesting", "Todo0", httpTypes, hummingbird, logging,
                nioConcurrencyHelpers, nioCore, nioHTTP1,
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "Todo0Tests",
            dependencies: [
                "OAuthCore", "SwitchboardTesting", "SystemTesting", "Todo0", asyncHTTPClient, nioCore, nioHTTP1,
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IdentityProviderTests",
            dependencies: [
                "IdentityProvider", "OAuthCore", "SwitchboardTesting", "SystemTesting", nioHTTP1,
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "LLMAdapterTests",
            dependencies: [
                "LLMAdapter", "SwitchboardJSON", "SwitchboardTesting", asyncHTTPClient, crypto, httpTypes,
                hummingbird, nioCore, nioHTTP1,
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "OAuthCoreTests", dependencies: ["OAuthCore", "SwitchboardTesting", asyncHTTPClient], swiftSettings: strict),
        .testTarget(name: "PostgresStateTests", dependencies: ["PluginAPI", "PostgresState", httpTypes], swiftSettings: strict),
        .testTarget(
            name: "Agent0Tests",
            dependencies: [
                "Agent0", "Gateway", "IdentityProvider", "OAuthCore", "StandardPlugins", "SwitchboardJSON",
                "SwitchboardTesting", "SystemTesting", "Todo0", crypto, httpTypes, hummingbird, logging, nioCore,
                nioHTTP1,
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "UpstreamTests", dependencies: ["SwitchboardTesting", "Upstream", asyncHTTPClient, nioCore, nioHTTP1], swiftSettings: strict),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "OAuthCore", "PluginAPI", "PluginTestKit", "StandardPlugins", "SwitchboardJSON", "SwitchboardTesting",
                "Upstream", asyncHTTPClient, crypto, httpTypes, hummingbird, logging, nioConcurrencyHelpers, nioCore,
                nioHTTP1, nioPosix, serviceLifecycle,
            ],
            swiftSettings: strict
        ),
    ]
)
