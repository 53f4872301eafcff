import Foundation
import MailMessage
import Testing

@Suite(.enabled(if: PythonOracle.isAvailable, "needs /usr/bin/python3"))
struct CharsetTests {
    /// Charsets with text that each can represent.
    static let samples: [(charset: String, text: String)] = [
        ("ISO-8859-1", "Grüße, señor, ça va"),
        ("ISO-8859-2", "Zażółć gęślą jaźń"),
        ("ISO-8859-5", "Съешь же ещё этих"),
        ("ISO-8859-7", "Ελληνικά γράμματα"),
        ("ISO-8859-15", "Prix: 20 € net"),
        ("Windows-1250", "Příliš žluťoučký kůň"),
        ("Windows-1251", "Привет, мир"),
        ("Windows-1252", "“Quotes” – and … more €"),
        ("KOI8-R", "Широкая электрификация"),
        ("Shift_JIS", "日本語のテキスト、カタカナ"),
        ("ISO-2022-JP", "こんにちは世界"),
        ("GB18030", "中文文本和😀"),
        ("Big5", "繁體中文測試"),
        ("EUC-KR", "한국어 텍스트"),
    ]

    @Test func encodesAsPythonDecodes() throws {
        for (charset, text) in Self.samples {
            let bytes = try #require(Charset.encode(text, to: charset), "\(charset)")
            #expect(bytes != Array(text.utf8), "\(charset) left the text as UTF-8")
            let script = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read().decode('\(charset)').encode('utf-8'))"
            let decoded = String(decoding: try PythonOracle.run(script, input: bytes), as: UTF8.self)
            #expect(decoded == text, "\(charset)")
            #expect(Charset.decode(bytes, from: charset) == text, "\(charset) own decoding")
        }
    }

    @Test func composedTextReadsBack() throws {
        for (charset, text) in Self.samples {
            var builder = MessageBuilder()
            builder.from = [try MailAddress(parsing: "a@example.test")]
            builder.subject = text
            builder.text = text + "\n"
            builder.charset = charset
            let message = try builder.build()
            #expect(message.warnings.isEmpty, "\(charset)")
            let view = try PythonView(try message.serialized())
            #expect(view.string(0, "charset") == charset.lowercased(), "\(charset)")
            #expect(view.text(0) == text + "\n", "\(charset)")
            #expect(view.fields["Subject"] == text, "\(charset)")
        }
    }

    @Test func unrepresentableTextReturnsNil() {
        #expect(Charset.encode("日本", to: "ISO-8859-1") == nil)
        #expect(Charset.encode("😀", to: "Shift_JIS") == nil)
        #expect(Charset.encode("text", to: "NO-SUCH-CHARSET") == nil)
        #expect(Charset.encode("x", to: "UTF-8//TRANSLIT") == nil)
        #expect(!Charset.isSupported("UTF-8//IGNORE"))
    }
}
