/// Case-insensitive field lookup for callers that need an end-to-end field
/// such as Idempotency-Key. Field names are case-insensitive (RFC 9110 §5.1);
/// `lowercasedName` must already be lowercase.
enum FieldLookup {
    static func firstIndex(_ fields: [FieldRange], _ name: String, _ source: UnsafeRawBufferPointer) -> Int? {
        fields.firstIndex { NameMatch.equals(source, $0.name, name) }
    }

    static func values(_ fields: [FieldRange], _ name: String, _ source: UnsafeRawBufferPointer) -> [Range<Int>] {
        fields.compactMap { NameMatch.equals(source, $0.name, name) ? $0.value : nil }
    }

    static func count(_ fields: [FieldRange], _ name: String, _ source: UnsafeRawBufferPointer) -> Int {
        var count = 0
        for field in fields where NameMatch.equals(source, field.name, name) { count += 1 }
        return count
    }
}

public extension RequestHead {
    /// Un-marks fields named `lowercasedNames` that a Connection field had marked hop-by-hop:
    /// fields the proxy depends on end to end (SPEC §5: `Connection` can never remove the
    /// key or the scope header). Only fields outside RFC 9110 §7.6.1's fixed list may be given.
    mutating func keepFields(_ lowercasedNames: [String], in source: UnsafeRawBufferPointer) {
        for index in fields.indices where hopByHop[index] {
            for name in lowercasedNames where NameMatch.equals(source, fields[index].name, name) {
                hopByHop[index] = false
            }
        }
    }

    func firstIndex(ofField lowercasedName: String, in source: UnsafeRawBufferPointer) -> Int? {
        FieldLookup.firstIndex(fields, lowercasedName, source)
    }

    func fieldCount(named lowercasedName: String, in source: UnsafeRawBufferPointer) -> Int {
        FieldLookup.count(fields, lowercasedName, source)
    }

    /// The value ranges of every field line named `lowercasedName`, in order.
    func values(ofField lowercasedName: String, in source: UnsafeRawBufferPointer) -> [Range<Int>] {
        FieldLookup.values(fields, lowercasedName, source)
    }

    /// Whether the field line at `index` is named `lowercasedName`. For callers looking for
    /// several names in one pass over `fields`.
    @inline(__always)
    func field(_ index: Int, isNamed lowercasedName: String, in source: UnsafeRawBufferPointer) -> Bool {
        NameMatch.equals(source, fields[index].name, lowercasedName)
    }

    /// As above, for a name given as lowercase ASCII bytes (a faster comparison than a string's
    /// UTF-8 view).
    @inline(__always)
    func field(_ index: Int, isNamed lowercasedName: [UInt8], in source: UnsafeRawBufferPointer) -> Bool {
        NameMatch.equals(source, fields[index].name, lowercasedName)
    }

    /// Calls `body` with the value range of every field line named `lowercasedName` (ASCII
    /// bytes), in order, without collecting them.
    @inline(__always)
    func forEachValue(ofField lowercasedName: [UInt8], in source: UnsafeRawBufferPointer, _ body: (Range<Int>) -> Void) {
        fields.withUnsafeBufferPointer { Self.forEachValue(ofField: lowercasedName, among: $0, in: source, body) }
    }

    /// The same over field lines a caller holds (borrowed, so no array is retained).
    static func forEachValue(
        ofField lowercasedName: [UInt8], among fields: UnsafeBufferPointer<FieldRange>, in source: UnsafeRawBufferPointer,
        _ body: (Range<Int>) -> Void
    ) {
        // A name can only match a name of its own length, so the bytes are compared only then.
        let length = lowercasedName.count
        for field in fields where field.name.count == length && NameMatch.equals(source, field.name, lowercasedName) {
            body(field.value)
        }
    }

    /// As above, for a name given as a string.
    @inline(__always)
    func forEachValue(ofField lowercasedName: String, in source: UnsafeRawBufferPointer, _ body: (Range<Int>) -> Void) {
        for field in fields where NameMatch.equals(source, field.name, lowercasedName) { body(field.value) }
    }
}

public extension ResponseHead {
    func firstIndex(ofField lowercasedName: String, in source: UnsafeRawBufferPointer) -> Int? {
        FieldLookup.firstIndex(fields, lowercasedName, source)
    }

    func fieldCount(named lowercasedName: String, in source: UnsafeRawBufferPointer) -> Int {
        FieldLookup.count(fields, lowercasedName, source)
    }
}
