/// Entry points for heads that do not come from the HTTP/1.1 parser (HTTP/2 header
/// blocks): the same token and method recognition, and a walk over a trailer section.
extension HeaderToken {
    /// The token of a header name given as bytes (any case).
    public static func of(_ name: UnsafeRawBufferPointer) -> HeaderToken {
        guard let p = name.baseAddress, !name.isEmpty else { return .other }
        return recognise(p.assumingMemoryBound(to: UInt8.self), name.count)
    }
}

extension Method {
    public static func of(_ name: UnsafeRawBufferPointer) -> Method {
        guard let p = name.baseAddress, !name.isEmpty else { return .other }
        return recognise(p.assumingMemoryBound(to: UInt8.self), name.count)
    }
}

/// Calls `body(name, value)` for each "name: value\r\n" line of a trailer section as
/// BodyDecoder hands it over (already validated), values OWS-trimmed.
public func forEachTrailerField(_ block: UnsafeRawBufferPointer,
                                _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
    guard let base = block.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
    var i = 0
    while i < block.count {
        switch readFieldLine(base, i, block.count) {
        case .field(let nameEnd, let valueStart, let valueEnd, let next):
            body(UnsafeRawBufferPointer(rebasing: block[i..<nameEnd]),
                 UnsafeRawBufferPointer(rebasing: block[valueStart..<valueEnd]))
            i = next
        case .blank, .starved, .invalid:
            return
        }
    }
}
