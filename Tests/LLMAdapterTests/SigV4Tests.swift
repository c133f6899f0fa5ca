import Foundation
import Testing
@testable import LLMAdapter

/// SigV4 against published vectors: the AWS SigV4 test suite (2015), the older suite botocore
/// still carries (tests/unit/auth/aws4_testsuite, 2011), and a Bedrock request signed by
/// botocore 1.43.
@Suite("SigV4 signer")
struct SigV4Tests {
    static let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "service")
    static let timestamp = "20150830T123600Z"
    /// 2015-08-30T12:36:00Z.
    static let date = Date(timeIntervalSince1970: 1_440_938_160)
    static let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    static func signature(_ authorization: String) -> String? {
        authorization.components(separatedBy: "Signature=").last.flatMap { $0.count == 64 ? $0 : nil }
    }

    static func signedHeaders(_ authorization: String) -> String? {
        guard let start = authorization.range(of: "SignedHeaders=") else { return nil }
        return String(authorization[start.upperBound...].prefix { $0 != "," })
    }

    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var method: String
        var path: String
        var query: String?
        var headers: [(String, String)]
        var body: String
        var signedHeaders: String
        var signature: String
        var testDescription: String { name }
    }

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla", method: "GET", path: "/", query: nil, headers: [("host", "example.amazonaws.com")], body: "",
               signedHeaders: "host;x-amz-date", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(name: "post-vanilla", method: "POST", path: "/", query: nil, headers: [("host", "example.amazonaws.com")], body: "",
               signedHeaders: "host;x-amz-date", signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "get-vanilla-query-order-key-case", method: "GET", path: "/", query: "Param2=value2&Param1=value1",
               headers: [("host", "example.amazonaws.com")], body: "",
               signedHeaders: "host;x-amz-date", signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "post-x-www-form-urlencoded", method: "POST", path: "/", query: nil,
               headers: [("content-type", "application/x-www-form-urlencoded"), ("host", "example.amazonaws.com")], body: "Param1=value1",
               signedHeaders: "content-type;host;x-amz-date", signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ]

    @Test("2015 suite through authorization(…)", arguments: vectors)
    func suiteAuthorization(_ v: Vector) {
        let auth = Self.signer.authorization(
            method: v.method, path: v.path, query: v.query, headers: v.headers + [("x-amz-date", Self.timestamp)],
            payloadHash: SigV4Signer.hexSHA256(Array(v.body.utf8)), timestamp: Self.timestamp)
        #expect(Self.signedHeaders(auth) == v.signedHeaders)
        #expect(Self.signature(auth) == v.signature, "\(auth)")
    }

    @Test("2015 suite through sign(…)", arguments: vectors)
    func suiteSign(_ v: Vector) {
        let added = Self.signer.sign(method: v.method, path: v.path, query: v.query, headers: v.headers, body: Array(v.body.utf8), date: Self.date)
        #expect(added.map(\.0) == ["x-amz-date", "authorization"])
        #expect(added.first?.1 == Self.timestamp)
        let auth = added.last?.1 ?? ""
        #expect(Self.signedHeaders(auth) == v.signedHeaders)
        #expect(Self.signature(auth) == v.signature, "\(auth)")
    }

    @Test func getVanillaFullAuthorization() {
        let auth = Self.signer.authorization(
            method: "GET", path: "/", query: nil, headers: [("host", "example.amazonaws.com"), ("x-amz-date", Self.timestamp)],
            payloadHash: Self.emptyHash, timestamp: Self.timestamp)
        #expect(auth == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
            + "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test func getVanillaCanonicalRequest() {
        let (canonical, signed) = Self.signer.canonicalRequest(
            method: "get", path: "/", query: nil, headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", Self.timestamp)],
            payloadHash: Self.emptyHash)
        #expect(signed == "host;x-amz-date")
        #expect(canonical == "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + Self.emptyHash)
    }

    @Test func queryIsSortedAndEncoded() {
        #expect(SigV4Signer.canonicalQuery("Param2=value2&Param1=value1") == "Param1=value1&Param2=value2")
        #expect(SigV4Signer.canonicalQuery("b=2&a=2&a=1") == "a=1&a=2&b=2")
        #expect(SigV4Signer.canonicalQuery("k=a b&j") == "j=&k=a%20b")
        #expect(SigV4Signer.canonicalQuery(nil) == "")
    }

    @Test func uriEncoding() {
        #expect(SigV4Signer.uriEncode("AZaz09-_.~") == "AZaz09-_.~")
        #expect(SigV4Signer.uriEncode("a b/c:d+é") == "a%20b%2Fc%3Ad%2B%C3%A9")
        #expect(SigV4Signer.canonicalURI("") == "/")
    }

    @Test func timestampFormat() {
        #expect(SigV4Signer.timestamp(Self.date) == "20150830T123600Z")
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 1_440_938_160.9)) == "20150830T123600Z")
    }

    // MARK: - The 2011 suite (service "host", a Date header instead of x-amz-date)

    static let oldSigner = SigV4Signer(credentials: credentials, region: "us-east-1", service: "host")
    static let oldHeaders = [("date", "Mon, 09 Sep 2011 23:36:00 GMT"), ("host", "host.foo.com")]

    @Test("2011 suite: get-utf8 and get-space (paths encoded once more)", arguments: [
        ("/%E1%88%B4", "/%25E1%2588%25B4", "57b1eb3df3b16a8479c0097b66c0b261cfd65b829419a3f2c3d05319722490b8"),
        ("/%20/foo", "/%2520/foo", "2be9e587d1ee1f0fd02128724b86b4358ba3630d39f493b6e06610a19a50779e"),
    ])
    func oldSuite(_ path: String, _ canonicalURI: String, _ signature: String) {
        let (canonical, _) = Self.oldSigner.canonicalRequest(method: "GET", path: path, query: nil, headers: Self.oldHeaders, payloadHash: Self.emptyHash)
        #expect(canonical.split(separator: "\n", omittingEmptySubsequences: false)[1] == Substring(canonicalURI))
        let auth = Self.oldSigner.authorization(method: "GET", path: path, query: nil, headers: Self.oldHeaders, payloadHash: Self.emptyHash, timestamp: "20110909T233600Z")
        #expect(Self.signedHeaders(auth) == "date;host")
        #expect(Self.signature(auth) == signature, "\(auth)")
        #expect(auth.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, "))
    }

    // MARK: - Bedrock, as botocore 1.43 signs it

    static let bedrockSigner = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "SESSIONTOKENEXAMPLE"),
        region: "us-west-2", service: "bedrock")
    static let bedrockPath = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    static let bedrockHeaders = [("host", "bedrock-runtime.us-west-2.amazonaws.com"), ("content-type", "application/json"), ("accept", "application/json")]
    static let bedrockBody = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#
    /// 2026-11-27T12:00:00Z.
    static let bedrockDate = Date(timeIntervalSince1970: 1_795_780_800)

    @Test func bedrockMatchesBotocore() {
        let added = Self.bedrockSigner.sign(method: "POST", path: Self.bedrockPath, headers: Self.bedrockHeaders, body: Array(Self.bedrockBody.utf8), date: Self.bedrockDate)
        #expect(added.map(\.0) == ["x-amz-date", "x-amz-security-token", "authorization"])
        #expect(added[0].1 == "20261127T120000Z")
        #expect(added[1].1 == "SESSIONTOKENEXAMPLE")
        let auth = added[2].1
        #expect(auth.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-west-2/bedrock/aws4_request, "))
        #expect(Self.signedHeaders(auth) == "accept;content-type;host;x-amz-date;x-amz-security-token")
        #expect(Self.signature(auth) == "41d5f7dc40d8fcc4c8e417060a064d1f10f815d767e1a0fbb7d0a5e411d25f2a", "\(auth)")
    }

    @Test func bedrockCanonicalURIEncodesTheColonTwice() {
        let headers = Self.bedrockHeaders + [("x-amz-date", "20261127T120000Z"), ("x-amz-security-token", "SESSIONTOKENEXAMPLE")]
        let (canonical, _) = Self.bedrockSigner.canonicalRequest(
            method: "POST", path: Self.bedrockPath, query: nil, headers: headers, payloadHash: SigV4Signer.hexSHA256(Array(Self.bedrockBody.utf8)))
        let lines = canonical.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "POST")
        #expect(lines[1] == "/model/anthropic.claude-3-5-sonnet-20241022-v2%253A0/invoke")
        #expect(lines.last == Substring(SigV4Signer.hexSHA256(Array(Self.bedrockBody.utf8))))
    }

    // MARK: - Every input counts

    @Test func changingAnInputChangesTheSignature() {
        func sig(_ signer: SigV4Signer, body: String = "", date: Date = Self.date) -> String? {
            Self.signature(signer.sign(method: "GET", path: "/", headers: [("host", "example.amazonaws.com")], body: Array(body.utf8), date: date).last?.1 ?? "")
        }
        let base = sig(Self.signer)
        #expect(base == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        let otherSecret = SigV4Signer(credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ"),
                                      region: "us-east-1", service: "service")
        let otherRegion = SigV4Signer(credentials: Self.credentials, region: "us-east-2", service: "service")
        let otherService = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "bedrock")
        let variants = [
            sig(otherSecret), sig(otherRegion), sig(otherService), sig(Self.signer, body: "x"),
            sig(Self.signer, date: Self.date.addingTimeInterval(1)), sig(Self.signer, date: Self.date.addingTimeInterval(86_400)),
        ]
        for variant in variants {
            #expect(variant != nil)
            #expect(variant != base)
        }
        #expect(Set(variants.compactMap { $0 }).count == variants.count)
        // A session token is signed too.
        let withToken = SigV4Signer(credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: Self.credentials.secretAccessKey, sessionToken: "T"),
                                    region: "us-east-1", service: "service")
        #expect(sig(withToken) != base)
    }

    @Test func headerValuesAreTrimmedAndMerged() {
        let (canonical, signed) = Self.signer.canonicalRequest(
            method: "GET", path: "/", query: nil, headers: [("My-Header1", "  a   b  c "), ("host", "h"), ("my-header1", "d")], payloadHash: Self.emptyHash)
        #expect(signed == "host;my-header1")
        #expect(canonical.contains("\nmy-header1:a b c,d\n"))
    }
}
