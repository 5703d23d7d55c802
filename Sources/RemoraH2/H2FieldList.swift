/// Header fields to send. Names must already be lowercase (the caller's job, or
/// `append(lowercasing:_:)`). Reused across messages: `removeAll` keeps capacity.
public struct H2FieldList {
    /// Names and values back to back; `ranges` index into it.
    var bytes: [UInt8] = []
    var ranges: [H2Field] = []

    public init() {}

    public var count: Int { ranges.count }

    public mutating func append(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let n0 = bytes.count
        bytes.append(contentsOf: name)
        let v0 = bytes.count
        bytes.append(contentsOf: value)
        ranges.append(H2Field(name: n0..<v0, value: v0..<bytes.count))
    }

    /// ASCII-lowercases the name as it copies (HTTP/1.1 names into HTTP/2).
    public mutating func append(lowercasing name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let n0 = bytes.count
        for b in name { bytes.append(b &- 65 < 26 ? b | 0x20 : b) }
        let v0 = bytes.count
        bytes.append(contentsOf: value)
        ranges.append(H2Field(name: n0..<v0, value: v0..<bytes.count))
    }

    public mutating func append(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        name.withUTF8Buffer { append(UnsafeRawBufferPointer($0), value) }
    }

    public mutating func append(_ name: StaticString, _ value: StaticString) {
        name.withUTF8Buffer { n in value.withUTF8Buffer { append(UnsafeRawBufferPointer(n), UnsafeRawBufferPointer($0)) } }
    }

    public mutating func append(_ name: String, _ value: String) {
        var name = name, value = value
        name.withUTF8 { n in value.withUTF8 { append(UnsafeRawBufferPointer(n), UnsafeRawBufferPointer($0)) } }
    }

    /// Keeps capacity.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        ranges.removeAll(keepingCapacity: true)
    }

    /// The i-th field as strings (tests and logs).
    public subscript(i: Int) -> (name: String, value: String) {
        let f = ranges[i]
        return (String(decoding: bytes[f.name], as: UTF8.self), String(decoding: bytes[f.value], as: UTF8.self))
    }

    /// The first byte of the first field's value when that field is `:status` (1xx check).
    var statusFirstByte: UInt8? {
        guard let f = ranges.first, f.name.count == 7, !f.value.isEmpty,
              bytes[f.name].elementsEqual(":status".utf8) else { return nil }
        return bytes[f.value.lowerBound]
    }
}
