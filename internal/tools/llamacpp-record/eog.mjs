// Records llama.cpp's end-of-generation set of vocab-only GGUF files (node-llama-cpp 3.21.1).
import {getLlama} from "node-llama-cpp";
import path from "node:path";
const [dir, ...names] = process.argv.slice(2);
const llama = await getLlama({gpu: false, logLevel: "error"});
const out = {};
for (const name of names) {
  const model = await llama.loadModel({modelPath: path.join(dir, `ggml-vocab-${name}.gguf`), vocabOnly: true});
  const eog = [];
  const n = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  for (let id = 0; id < n; id++) if (model.isEogToken(id)) eog.push(id);
  out[name] = {eos: model.tokens.eos, eot: model.tokens.eot, eog};
  await model.dispose();
}
console.log(JSON.stringify(out, null, 1));
