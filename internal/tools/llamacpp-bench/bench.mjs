// Measures llama.cpp's CPU speed on GGUF models, for comparison with lilims' reference
// runtime on the same machine (go test -bench 'Decode|Prefill64' ./stages/runtime/reference).
//
// Usage: node bench.mjs [--threads 2] [--reps 5] [--gen 128] [--prompt 64] MODEL.gguf ...
//
// For each model it reports the median over --reps repetitions of
//   - prompt processing: one batch of --prompt tokens (BOS first) into an empty context, and
//   - decode: --gen tokens generated greedily one at a time after a 16-token prompt,
// as tokens per second. The context is 256 tokens, as in the Go benchmarks.
//
// node-llama-cpp (prebuilt CPU llama.cpp) is installed on first use into a directory under
// the system temp dir (or $LLAMACPP_BENCH_DIR); it is a measuring tool, never a dependency
// of lilims.
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {pathToFileURL} from "node:url";

const VERSION = "3.21.1";
const CONTEXT = 256;

const args = process.argv.slice(2);
const opt = {threads: 2, reps: 5, gen: 128, prompt: 64};
const models = [];
for (let i = 0; i < args.length; i++) {
  const m = /^--(threads|reps|gen|prompt)$/.exec(args[i]);
  if (m) {
    opt[m[1]] = Number(args[++i]);
    if (!Number.isInteger(opt[m[1]]) || opt[m[1]] < 1) usage(`bad value for ${args[i - 1]}`);
  } else if (args[i].startsWith("-")) {
    usage(`unknown flag ${args[i]}`);
  } else {
    models.push(args[i]);
  }
}
if (models.length === 0) usage("no model given");
if (16 + opt.gen > CONTEXT || opt.prompt > CONTEXT) usage(`prompt and generation must fit the ${CONTEXT}-token context`);

function usage(msg) {
  console.error(`bench.mjs: ${msg}\nusage: node bench.mjs [--threads N] [--reps N] [--gen N] [--prompt N] MODEL.gguf ...`);
  process.exit(2);
}

// installDir returns a directory holding node_modules/node-llama-cpp@VERSION, installing it
// there with npm when it is missing.
function installDir() {
  const dir = process.env.LLAMACPP_BENCH_DIR || path.join(os.tmpdir(), `lilims-llamacpp-bench-${VERSION}`);
  const pkg = path.join(dir, "node_modules", "node-llama-cpp", "package.json");
  if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, "utf8")).version === VERSION) return dir;
  fs.mkdirSync(dir, {recursive: true});
  if (!fs.existsSync(path.join(dir, "package.json"))) {
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({name: "llamacpp-bench", private: true}));
  }
  console.error(`installing node-llama-cpp@${VERSION} into ${dir} …`);
  execFileSync("npm", ["i", "-E", `node-llama-cpp@${VERSION}`], {cwd: dir, stdio: ["ignore", "ignore", "inherit"]});
  return dir;
}

const dir = installDir();
const {getLlama} = await import(pathToFileURL(path.join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const now = () => Number(process.hrtime.bigint()) / 1e9;

// promptTokens returns n token ids: BOS (when the model has one) and then the tokenization
// of an ordinary English text, repeated as needed.
function promptTokens(model, n) {
  const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog. ";
  let toks = [];
  while (toks.length < n) toks = toks.concat(Array.from(model.tokenize(text.repeat(4), false)));
  if (model.tokens.bos != null) toks = [model.tokens.bos, ...toks];
  return toks.slice(0, n);
}

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const results = [];
for (const modelPath of models) {
  const model = await llama.loadModel({modelPath, gpuLayers: 0});
  const ctx = await model.createContext({contextSize: CONTEXT, batchSize: Math.max(opt.prompt, 16), threads: opt.threads, sequences: 1});
  const seq = ctx.getSequence();

  const pp = [];
  const prompt = promptTokens(model, opt.prompt);
  for (let r = 0; r <= opt.reps; r++) { // repetition 0 warms up
    await seq.clearHistory();
    const t0 = now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    if (r > 0) pp.push(prompt.length / (now() - t0));
  }

  const tg = [];
  const start = promptTokens(model, 16);
  for (let r = 0; r <= opt.reps; r++) {
    await seq.clearHistory();
    await seq.evaluateWithoutGeneratingNewTokens(start.slice(0, -1));
    // evaluate feeds the last prompt token and then each generated one: every token it
    // yields is one single-token decode.
    let n = 0;
    const t0 = now();
    for await (const _ of seq.evaluate(start.slice(-1), {temperature: 0})) {
      if (++n === opt.gen) break;
    }
    if (r > 0) tg.push(n / (now() - t0));
  }
  results.push({model: path.basename(modelPath), threads: opt.threads,
    prompt_tokens_per_s: Math.round(median(pp)), decode_tokens_per_s: Math.round(median(tg)),
    prompt_tokens: opt.prompt, decode_tokens: opt.gen, reps: opt.reps});
  await ctx.dispose();
  await model.dispose();
}
console.log(`llama.cpp via node-llama-cpp@${VERSION}, CPU, ${opt.threads} threads, context ${CONTEXT}, median of ${opt.reps}`);
for (const r of results) {
  console.log(`${r.model.padEnd(28)} prompt(${r.prompt_tokens}) ${String(r.prompt_tokens_per_s).padStart(8)} tokens/s   decode ${String(r.decode_tokens_per_s).padStart(8)} tokens/s`);
}
console.log(JSON.stringify(results));
