/// One field line of a parsed head, as offsets into the caller's buffer.
///
/// Nothing is copied while parsing: `name` and `value` index the buffer the head
/// was parsed from, so they are only meaningful together with that buffer. The
/// value is already trimmed of leading and trailing optional whitespace (OWS),
/// which RFC 9112 §5 says is not part of the field value.
public struct FieldRange: Sendable, Equatable {
    public var name: Range<Int>
    public var value: Range<Int>

    public init(name: Range<Int>, value: Range<Int>) {
        self.name = name
        self.value = value
    }
}
