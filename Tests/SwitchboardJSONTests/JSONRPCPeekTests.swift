import SwitchboardJSON
import Testing

/// ``JSONRPCPeek``: the members it reads agree with the full parser's, the byte ranges it gives
/// are the values' own, what is not one JSON object is refused, and a repeated member is told.
@Suite("JSONRPCPeek")
struct JSONRPCPeekTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test(arguments: [
        #"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"todo0__get-todos","arguments":{"a":[1,2.5,-3e2,true,false,null]}}}"#,
        #"{ "params" : { "arguments" : {"x":"}\"{"} , "_meta":{"k":[{}]}, "name" : "a\u00e9\"b" } , "method":"tools/call", "id":"s-1", "jsonrpc":"2.0" }"#,
        #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        #"{"jsonrpc":"2.0","id":null,"method":"ping","params":[1,2]}"#,
        #"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#,
        #"{"jsonrpc":"2.0","id":4,"meth\u006fd":"tools/call","par\u0061ms":{"n\u0061me":"x","ünï":1,"\u00fcber":[]}}"#,
    ])
    func readsWhatTheParserReads(_ text: String) throws {
        let full = try #require(JSONValue.parse(Self.bytes(text)))
        let peek = try #require(JSONRPCPeek(Self.bytes(text)))
        #expect(peek.jsonrpc == full["jsonrpc"]?.string)
        #expect(peek.method == full["method"]?.string)
        #expect(peek.id == full["id"])
        #expect(peek.name == full["params"]?["name"]?.string)
        #expect(peek.arguments(in: Self.bytes(text)) == full["params"]?["arguments"])
        #expect(!peek.ambiguous)
        if let range = peek.nameRange {  // the string token itself, quotes and escapes included
            #expect(JSONValue.parse(Array(Self.bytes(text)[range])) == full["params"]?["name"])
        }
    }

    @Test(arguments: [
        "", " ", "[]", #"[{"method":"tools/call"}]"#, #""tools/call""#, "1", "null",
        #"{"method":"tools/call""#, #"{"method":"tools/call",}"#, #"{"method":tools}"#, #"{"a":[1,]}"#,
        #"{"a":01}"#, #"{"a":"\x"}"#, #"{"a":"\ud800"}"#, "{\"a\":\"\u{01}\"}", #"{"a":1} {}"#, #"{"a":{"b":[}}"#,
    ])
    func refusesWhatIsNotOneObject(_ text: String) {
        #expect(JSONRPCPeek(Self.bytes(text)) == nil, "\(text)")
        #expect(JSONValue.parse(Self.bytes(text))?.object == nil, "the parser agrees: \(text)")
    }

    @Test func refusesInvalidUTF8InASkippedString() {
        var bytes = Self.bytes(#"{"method":"x","other":"ab"}"#)
        bytes.insert(0xFF, at: bytes.count - 3)
        #expect(JSONRPCPeek(bytes) == nil)
    }

    @Test(arguments: [
        #"{"method":"tools/call","params":{"name":"a","name":"b"}}"#,
        #"{"method":"tools/list","method":"tools/call"}"#,
        #"{"id":1,"id":2,"method":"x"}"#,
        #"{"method":"x","params":{"arguments":{},"arguments":{"id":1}}}"#,
        #"{"method":"x","params":{"name":"a"},"params":{"name":"b"}}"#,
        #"{"method":"x","meth\u006fd":"y"}"#,
    ])
    func tellsARepeatedMember(_ text: String) throws {
        #expect(try #require(JSONRPCPeek(Self.bytes(text))).ambiguous)
    }

    @Test func aRepeatedMemberItDoesNotReadIsNoMatter() throws {
        let peek = try #require(JSONRPCPeek(Self.bytes(#"{"method":"x","other":1,"other":2,"params":{"arguments":{"k":1,"k":2}}}"#)))
        #expect(!peek.ambiguous)
    }

    @Test func refusesNestingBeyondTheCap() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(JSONRPCPeek(Self.bytes(#"{"method":"x","params":{"arguments":"# + deep + "}}")) == nil)
    }
}
