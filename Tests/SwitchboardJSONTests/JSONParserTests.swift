import Foundation
import SwitchboardJSON
import Testing

/// ``JSONValue/parse(_:)`` (the byte parser) against RFC 8259, and against Foundation's decoder
/// (the parser it replaced) on the same documents.
@Suite("JSONValue.parse")
struct JSONParserTests {
    /// What `JSONDecoder` makes of `text` through JSONValue's `Decodable` conformance.
    static func viaDecoder(_ text: String) -> JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }

    @Test(arguments: [
        #"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"todo0__get-todos","arguments":{"a":[1,2.5,-3e2,true,false,null]}}}"#,
        #"  [ ]  "#, #"{}"#, #""plain""#, "0", "-0.5", "1E+3", "true", "null",
        "[-0, -42, 7, 123456789012345, -123456789012345, 1234567890123456789, 10e2, 10.0]",
        #"{"s":"quote \" backslash \\ slash \/ tab \t nl \n \u00e9 \ud83d\ude00 end"}"#,
        #"{"nested":{"deeper":{"deepest":[[[{}]]]}}}"#, #"{"dup":1,"dup":2}"#, "\"ünïcödé ✓\"",
    ])
    func parsesLikeFoundation(_ text: String) throws {
        let parsed = JSONValue.parse(Array(text.utf8))
        #expect(parsed != nil, "\(text)")
        #expect(parsed == Self.viaDecoder(text), "\(text)")
    }

    /// For JOSE headers and JWT claims: a member named twice (also through an escape, also nested) is refused.
    @Test func refusingDuplicateNames() {
        for text in [#"{"a":1,"a":2}"#, #"{"aud":"x","\u0061ud":"y"}"#, #"{"o":{"k":1,"k":1}}"#, #"[{"k":1,"k":2}]"#] {
            #expect(JSONValue.parseRefusingDuplicateNames(Array(text.utf8)) == nil, "\(text)")
            #expect(JSONValue.parse(Array(text.utf8)) != nil, "\(text): the lenient parse still reads it")
        }
        #expect(JSONValue.parseRefusingDuplicateNames(Array(#"{"a":1,"b":{"a":2}}"#.utf8)) != nil)
    }

    @Test func keepsBooleansApartFromNumbers() {
        let v = JSONValue.parse(Array(#"[true, 1, false, 0]"#.utf8))
        #expect(v == .array([.bool(true), .number(1), .bool(false), .number(0)]))
    }

    @Test func decodesEscapesAndSurrogatePairs() {
        #expect(JSONValue.parse(Array(#""a\u0041\ud83d\ude00\n""#.utf8)) == .string("aA😀\n"))
    }

    @Test(arguments: [
        "", " ", "{", "[1,]", #"{"a":1,}"#, "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "[1 2]", #"{"a" 1}"#, #"{a:1}"#,
        "\"unterminated", "\"ctrl \u{01} char\"", #""\x""#, #""\ud800""#, #""\udc00\ud800""#, #""\u12G4""#, "[1] x", "NaN", "Infinity",
        "1e400", "'single'", "// c\n1",
    ])
    func refusesWhatIsNotJSON(_ text: String) {
        #expect(JSONValue.parse(Array(text.utf8)) == nil, "\(text.debugDescription)")
    }

    @Test func refusesInvalidUTF8() {
        #expect(JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) == nil)
        #expect(JSONValue.parse([0x22, 0xFF, 0x22]) == nil)
    }

    @Test func boundsTheNestingDepth() {
        let ok = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(JSONValue.parse(Array(ok.utf8)) != nil)
        #expect(JSONValue.parse(Array(deep.utf8)) == nil, "a hostile depth is refused, not a stack overflow")
    }

    @Test func roundTripsThroughTheWriter() {
        let text = #"{"a":[1,2,{"b":"c\u00e9"}],"d":true,"e":null,"f":-1.25}"#
        let v = JSONValue.parse(Array(text.utf8))
        #expect(v != nil && JSONValue.parse(Array(v!.encoded())) == v)
    }
}
