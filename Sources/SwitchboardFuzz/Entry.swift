import Foundation

/// `switchboard-fuzz TARGET FILE|DIR…` replays files (a corpus, a crash reproducer) through a
/// target — the test suite replays the committed corpus this way. Built with libFuzzer
/// (`-sanitize=fuzzer -DFUZZING`, see scripts/fuzz), it runs libFuzzer's driver on the target
/// named by `FUZZ_TARGET` instead, with libFuzzer's arguments. (SwiftPM points an
/// executable's `main` at its `@main`, so the driver is started from here rather than by
/// libFuzzer's own `main`.)
@main
struct SwitchboardFuzz {
    static func main() {
        #if FUZZING
        let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
        guard let target = FuzzTargets.all[name] else { usage() }
        Fuzzing.target = target
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
        #else
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTargets.all[name] else { usage() }
        var count = 0
        for path in args.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { (path as NSString).appendingPathComponent($0) }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target([UInt8](data))
                count += 1
            }
        }
        print("\(name): \(count) input(s) replayed, no crash")
        #endif
    }

    static func usage() -> Never {
        FileHandle.standardError.write(Data("usage: switchboard-fuzz {\(FuzzTargets.all.keys.sorted().joined(separator: "|"))} FILE|DIR… (FUZZ_TARGET=… with libFuzzer)\n".utf8))
        exit(2)
    }
}

#if FUZZING
enum Fuzzing {
    nonisolated(unsafe) static var target: (@Sendable ([UInt8]) -> Void)?
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzzing.target?(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
#endif
