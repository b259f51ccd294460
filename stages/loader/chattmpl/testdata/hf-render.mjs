// Renders every llama.cpp models/templates/*.jinja with @huggingface/jinja for one fixed
// conversation, writing NAME.txt (the rendered string) or NAME.err (the error) to OUT.
import { Template } from "@huggingface/jinja";
import fs from "node:fs";
import path from "node:path";

const [dir, out] = process.argv.slice(2);
const messages = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Hello, who are you?" },
  { role: "assistant", content: "I am a small model.\nHow can I help?" },
  { role: "user", content: "Tell me a story." },
];
// A fixed clock (run with TZ=UTC): 6 December 2026, so that templates printing today's date
// through the library's strftime_now are reproducible.
const FIXED = Date.UTC(2026, 11, 6, 12, 0, 0);
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...a) { super(...(a.length ? a : [FIXED])); }
  static now() { return FIXED; }
};
fs.mkdirSync(out, { recursive: true });
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".jinja")).sort()) {
  const name = f.replace(/\.jinja$/, "");
  const src = fs.readFileSync(path.join(dir, f), "utf8");
  try {
    const t = new Template(src);
    // date_string and datetime: what llama.cpp adds (common/chat.cpp, common_chat_extra_context).
    const s = t.render({ messages, add_generation_prompt: true, bos_token: "<s>", eos_token: "</s>", tools: null,
      date_string: "06 Dec 2026", datetime: "Dec 06 2026" });
    fs.writeFileSync(path.join(out, name + ".txt"), s);
  } catch (e) {
    fs.writeFileSync(path.join(out, name + ".err"), String(e.message || e) + "\n");
  }
}
