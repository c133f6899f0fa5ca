public import Foundation
import SwitchboardJSON

/// The JOSE header fields the verifier looks at before touching the signature.
struct JWTHeaderFields {
    var alg: String?
    var typ: String?
    var kid: String?
    var crit: [String]?

    /// Parses the first segment of a compact JWT: read once, as JSON that names no member
    /// twice; a field of the wrong type is malformed.
    static func parse(_ token: Substring) throws(TokenValidationError) -> JWTHeaderFields {
        guard let data = Base64URL.decode(token) else {
            throw TokenValidationError(.malformed, "token header is not base64url")
        }
        guard case .object(let fields)? = JSONValue.parseRefusingDuplicateNames(data) else {
            throw TokenValidationError(.malformed, "token header is not a JSON object with one value per name")
        }
        func string(_ name: String) throws(TokenValidationError) -> String? {
            guard let value = fields[name] else { return nil }
            guard case .string(let s) = value else { throw TokenValidationError(.malformed, "token header '\(name)' is not a string") }
            return s
        }
        var header = JWTHeaderFields(alg: try string("alg"), typ: try string("typ"), kid: try string("kid"))
        if let crit = fields["crit"] {
            guard let list = crit.array?.compactMap(\.string), list.count == crit.array?.count else {
                throw TokenValidationError(.malformed, "token header 'crit' is not a list of names")
            }
            header.crit = list
        }
        return header
    }
}

/// base64url without padding (RFC 7515 §2).
public enum Base64URL {
    /// The bytes `text` encodes, only when it is their one canonical spelling: the base64url
    /// alphabet, no padding, no stray bits in the last character. Anything else is nil — a
    /// token must have one spelling (a padded or re-spelled copy of a single-use token is the
    /// same token under another name).
    public static func decode(_ text: some StringProtocol) -> Data? {
        let alphabet = text.utf8.allSatisfy { c in
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
        }
        guard alphabet, text.utf8.count % 4 != 1 else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        let rem = s.count % 4
        if rem > 0 { s += String(repeating: "=", count: 4 - rem) }
        guard let data = Data(base64Encoded: s), encode(data) == text else { return nil }
        return data
    }

    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
