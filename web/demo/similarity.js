// Demo tab "Sentence similarity": paraphrase-MiniLM-L3-v2 in a worker; the tokenizer, mean
// pooling and cosine come from uniml/text (Hugging Face `tokenizers` in its own small wasm,
// loaded only by this tab).
import { Tokenizer, cosine, meanPool } from 'uniml/text';

import { createSession, memoryMB, modelUrl, progressTo, showError } from './models.js';

const $ = (id) => document.getElementById(id);

const QUERY = 'A man is playing a guitar.';
const SENTENCES = [
  'The stock market fell sharply today.',
  'Someone plays an acoustic guitar.',
  'A cat is sleeping on the sofa.',
  'A musician performs a song on his guitar.',
  'Interest rates rose again this quarter.',
  'The children are playing football in the park.',
];

let tokenizer;
let session;
const last = { feeds: null, embeddings: null, ranked: null, ms: NaN };

/** Embeds sentences in one batch: token embeddings from the model, mean-pooled over the mask. */
async function embed(sentences) {
  const enc = tokenizer.encode(sentences);
  const feeds = { input_ids: enc.inputIds, attention_mask: enc.attentionMask };
  if (session.inputNames.includes('token_type_ids')) feeds.token_type_ids = enc.tokenTypeIds;
  const out = await session.run(feeds);
  // The per-token output: the one whose declared rank is 3 ([batch, seq, hidden]).
  const name = session.outputMetadata.find((o) => o.dtype === 'float32' && o.dims && o.dims.length === 3)?.name;
  if (!name) throw new Error(`the model has no [batch, seq, hidden] float32 output (outputs: ${session.outputNames.join(', ')})`);
  last.feeds = feeds;
  return meanPool(out[name], enc.attentionMask);
}

/** Ranks `sentences` by cosine similarity of their embeddings to the query's. */
async function rank(query, sentences) {
  const t0 = performance.now();
  const [q, ...rest] = await embed([query, ...sentences]);
  last.ms = performance.now() - t0;
  last.embeddings = [q, ...rest];
  last.ranked = sentences.map((s, i) => ({ sentence: s, score: cosine(q, rest[i]) })).sort((a, b) => b.score - a.score);
  const list = $('sim-list');
  list.innerHTML = '';
  for (const { sentence, score } of last.ranked) {
    const li = document.createElement('li');
    const bar = Object.assign(document.createElement('span'), { className: 'b' });
    bar.style.width = `${Math.max(2, Math.max(0, score) * 160)}px`;
    li.append(bar, `${sentence} `, Object.assign(document.createElement('span'), { className: 'small', textContent: score.toFixed(3) }));
    list.append(li);
  }
  $('sim-info').textContent = `${sentences.length + 1} sentences embedded in ${last.ms.toFixed(0)} ms in a worker (tokens of the query: ${tokenizer.tokens(query).join(' ')})`;
  return last.ranked;
}

function rankFromUi() {
  const sentences = $('sim-sentences').value.split('\n').map((s) => s.trim()).filter(Boolean);
  return rank($('sim-query').value.trim(), sentences);
}

/** Starts the tab: tokenizer (wasm) and model, then ranks the example sentences. */
export function startSimilarity() {
  $('sim-query').value = QUERY;
  $('sim-sentences').value = SENTENCES.join('\n');
  const err = $('sim-error');
  const model = createSession(modelUrl('textModel', '/.cache/models/paraphrase-MiniLM-L3-v2.onnx'), progressTo({ bar: $('sim-bar'), text: $('sim-progress') }, 'paraphrase-MiniLM-L3-v2'));
  const tok = Tokenizer.create(modelUrl('textTokenizer', '/models/bert-uncased-tokenizer.json'), { maxLength: 128 });
  const ready = Promise.all([tok, model])
    .then(([t, s]) => {
      tokenizer = t;
      session = s;
      return rankFromUi();
    })
    .catch((e) => Promise.reject(showError(err, e)));
  $('sim-rank').onclick = () => session && tokenizer && rankFromUi().catch((e) => showError(err, e));
  return { ready, rank, last, memory: async () => ({ minilm: await memoryMB(await model) }) };
}
