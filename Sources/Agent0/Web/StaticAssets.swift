import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The page: every file of `Public/` read once at start and served from memory (no path from
/// a request ever reaches the file system). `index.html` is `/`, the rest `/static/…`.
struct StaticAssets: Sendable {
    struct Asset: Sendable {
        var body: ByteBuffer
        var contentType: String
        var etag: String
    }

    let files: [String: Asset]

    static func load() throws -> StaticAssets {
        guard let root = Bundle.module.url(forResource: "Public", withExtension: nil) else {
            throw AgentError(code: "internal_error", status: .internalServerError, message: "agent0's page (Public/) is missing from the build")
        }
        var files: [String: Asset] = [:]
        let base = root.standardizedFileURL.path
        let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
        while let url = walker?.nextObject() as? URL {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(base.count))  // "/app.js"
            let data = try Data(contentsOf: url)
            let etag = "\"" + SHA256.hash(data: data).prefix(12).map { String(format: "%02x", $0) }.joined() + "\""
            let asset = Asset(body: ByteBuffer(bytes: data), contentType: contentType(url.pathExtension), etag: etag)
            files[relative == "/index.html" ? "/" : "/static" + relative] = asset
        }
        return StaticAssets(files: files)
    }

    func response(_ path: String, request: Request) -> Response? {
        guard let asset = files[path] else { return nil }
        var headers: HTTPFields = [.contentType: asset.contentType, .cacheControl: "no-cache", .eTag: asset.etag]
        if request.headers[.ifNoneMatch] == asset.etag {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(asset.body.readableBytes)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: asset.body))
    }

    static func contentType(_ ext: String) -> String {
        switch ext {
        case "html": return "text/html; charset=utf-8"
        case "js": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        case "txt": return "text/plain; charset=utf-8"
        default: return "application/octet-stream"
        }
    }
}
