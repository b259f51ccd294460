// Records llama.cpp's behaviour on GGUF fixtures (through node-llama-cpp).
// Usage: node record.mjs MODELDIR OUT.json [model ...]
// For each model: tokenizations of probe strings, the full next-token
// distribution (top 20 kept, plus log-sum info) at every prompt position, and
// a greedy continuation.
import fs from "node:fs";
import path from "node:path";
import {getLlama} from "node-llama-cpp";

const [dir, outFile, ...only] = process.argv.slice(2);
const names = only.length ? only : JSON.parse(fs.readFileSync(path.join(dir, "models.json")));

const PROBES = [
  "Hello world",
  "The licensee shall not distribute the Program",
  "  leading spaces and\ttabs\nnew lines",
  "Numbers 12345 and 3.14159, symbols: #@$%^&*()!",
  "Unicode: café naïve résumé 日本語 🙂",
  "don't won't they're I'm we've you'll he'd",
  "",
  "a",
  "WARRANTY OF ANY KIND, EXPRESS OR IMPLIED",
];
const PROMPTS = [
  "The Program is distributed in the hope",
  "Licensed under the Apache License",
  "copyright notice",
  "Once upon a time",
];
const TOPK = 20;
const GREEDY = 24;

const llama = await getLlama({gpu: false, logLevel: "error"});
const result = {generator: "llama.cpp via node-llama-cpp@3.21.1", models: {}};

for (const name of names) {
  const model = await llama.loadModel({modelPath: path.join(dir, name)});
  const rec = {tokenize: [], prompts: []};
  for (const s of PROBES) {
    rec.tokenize.push({text: s, tokens: Array.from(model.tokenize(s, false)),
                       with_special: Array.from(model.tokenize(s, true))});
  }
  for (const p of PROMPTS) {
    const ctx = await model.createContext({contextSize: 128, batchSize: 128, threads: 2});
    const seq = ctx.getSequence();
    let toks = Array.from(model.tokenize(p, false));
    if (model.tokens.bos != null && model.tokens.shouldPrependBosToken) toks = [model.tokens.bos, ...toks];
    const input = toks.map((t) => [t, {generateNext: {probabilities: true, token: true, options: {temperature: 0}}}]);
    const outs = await seq.controlledEvaluate(input);
    const steps = outs.map((o, i) => {
      const probs = Array.from(o.next.probabilities.entries()).slice(0, TOPK);
      return {pos: i, token_in: toks[i], argmax: o.next.token, top: probs.map(([t, pr]) => [t, pr])};
    });
    // greedy continuation from the end of the prompt
    const gen = [];
    let next = outs[outs.length - 1].next.token;
    for (let k = 0; k < GREEDY; k++) {
      gen.push(next);
      const o = await seq.controlledEvaluate([[next, {generateNext: {token: true, options: {temperature: 0}}}]]);
      next = o[0].next.token;
    }
    rec.prompts.push({prompt: p, tokens: toks, steps, greedy: gen, greedy_text: model.detokenize(gen)});
    await ctx.dispose();
  }
  result.models[name] = rec;
  await model.dispose();
  console.error("done", name);
}
fs.writeFileSync(outFile, JSON.stringify(result));
