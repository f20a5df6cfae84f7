#!/usr/bin/env node
// goldens.mjs — turns the harness's (llamaref/ref.mjs) output into the committed golden
// files of this folder, and proves from llama.cpp's tensor dump that the compressed
// attention paths really ran. Used by gen_goldens.sh; no dependencies beyond Node.
//
//   node goldens.mjs golden IN.json OUT.json
//       The logits of `ref.mjs logits --all-positions` without the token pieces and
//       probabilities (ids, logits and logprobs stay), one line per row.
//   node goldens.mjs check --info INFO.json --dump DUMP.json --run RUN.json
//                    --golden GOLDEN.json --out DEBUG.json
//       (INFO.json: `ref.mjs info` of the model, for its compress ratios, index_topk and
//       window; RUN.json: `ref.mjs logits` of the dumped run; GOLDEN.json: the undumped run)
//       Fails (exit 1) unless, in llama.cpp's dump of the prompt: every ratio-4 layer
//       computed csa_state_compress, lid_state_compress and lid_top_k (top-k rows of
//       index_topk entries for every position) and attended with attn_csa_lid; every
//       ratio-128 layer computed hca_state_compress and attended with attn_hca; every
//       ratio-0 layer attended with attn_raw; and, during the greedy steps, every HCA
//       layer compressed exactly at the positions p with (p+1) mod 128 = 0. It also
//       checks that the dumped run's logits are the golden's (the dump did not change
//       the computation) and writes DEBUG.json: per tensor its shape and, for chosen
//       rows (prompt positions, or every compressed entry), the first 8 values, sum,
//       L2 norm, min and max; integer tensors (lid_top_k, ffn_moe_topk, …) in full.
//       Prints the figures (entries, selection, top-k score gaps) as JSON on stdout.
import fs from 'node:fs'

const die = (m) => { process.stderr.write('goldens.mjs: ' + m + '\n'); process.exit(1) }
const argv = process.argv.slice(2)
const opt = (k, d) => { const i = argv.indexOf('--' + k); return i >= 0 ? argv[i + 1] : d }
const readJSON = (f) => JSON.parse(fs.readFileSync(f, 'utf8'))

// Rows one to a line: small diffs when regenerated, and a file a person can read.
function writeRows(path, head, lists) {
  const parts = [JSON.stringify(head).slice(0, -1)]
  for (const [k, rows] of Object.entries(lists)) {
    parts.push(`,\n"${k}": [\n` + rows.map((r) => JSON.stringify(r)).join(',\n') + '\n]')
  }
  fs.writeFileSync(path, parts.join('') + '\n}\n')
}

function golden(inPath, outPath) {
  const g = readJSON(inPath)
  const trim = (e) => {
    const r = { ...e, top: e.top.map((t) => ({ id: t.id, logit: t.logit, logprob: t.logprob })) }
    return r
  }
  const head = {
    route: g.route, desc: g.desc, n_vocab: g.n_vocab, threads: g.threads, kv_type: g.kv_type,
    flash_attn: g.flash_attn, prompt_tokens: g.prompt_tokens, generated_tokens: g.generated_tokens,
    next_after_generated: g.next_after_generated, checks: g.checks,
  }
  writeRows(outPath, head, { positions: g.positions.map(trim), greedy: g.greedy.map(trim) })
}

// The prompt positions whose rows DEBUG.json keeps: the first few, both sides of the
// first CSA entry (position 3), of the indexer's first real selection, of the window
// and of each HCA entry, and the last.
function chosenPositions(T, topK, window) {
  const p = [0, 1, 2, 3, 4, 7, 15, 16, window - 1, window, 4 * topK + 3, 4 * topK + 4, 127, 128, 255, 256, T - 1]
  return [...new Set(p.filter((x) => x >= 0 && x < T))].sort((a, b) => a - b)
}

const r7 = (x) => (Number.isFinite(x) ? Number(x.toPrecision(7)) : String(x))

function summarize(t, T, positions) {
  const ne = t.ne
  let rowsDim = ne.length - 1
  while (rowsDim > 0 && ne[rowsDim] === 1) rowsDim--
  // A vector is one row; otherwise rows run along the last dimension over 1.
  const nRows = rowsDim === 0 ? 1 : ne[rowsDim]
  const rowLen = rowsDim === 0 ? ne[0] : ne.slice(0, rowsDim).reduce((a, b) => a * b, 1)
  const data = (t.data ?? []).map((x) => (x === null ? -Infinity : x))
  const out = { name: t.name, type: t.type, ne }
  if (t.type.startsWith('i')) {
    out.data = data
    return out
  }
  const byToken = T > 1 && nRows === T
  let rows
  if (byToken) {
    out.rows_are = 'prompt positions'
    rows = positions
  } else {
    // Compressed entries (or windows): the first four, two in the middle and the last
    // one holding a non-zero value (llama.cpp pads its entry buffers with zero rows).
    out.rows_are = nRows === 1 ? 'the whole tensor' : 'entries'
    let lastUsed = nRows - 1
    while (lastUsed > 0 && data.slice(lastUsed * rowLen, (lastUsed + 1) * rowLen).every((x) => x === 0)) lastUsed--
    out.rows_used = lastUsed + 1
    rows = [...new Set([0, 1, 2, 3, 16, 17, lastUsed].filter((r) => r <= lastUsed))]
  }
  out.rows = rows.map((r) => {
    const v = data.slice(r * rowLen, (r + 1) * rowLen)
    let sum = 0, sq = 0, mn = Infinity, mx = -Infinity, finite = 0
    for (const x of v) {
      if (!Number.isFinite(x)) continue
      finite++; sum += x; sq += x * x; mn = Math.min(mn, x); mx = Math.max(mx, x)
    }
    return { row: r, first: v.slice(0, 8).map(r7), sum: r7(sum), norm: r7(Math.sqrt(sq)), min: r7(mn), max: r7(mx), finite }
  })
  return out
}

function check() {
  const dump = readJSON(opt('dump'))
  const run = readJSON(opt('run'))
  const gold = readJSON(opt('golden'))
  // The model's shape, from `ref.mjs info` (llama.cpp's reading of the file's metadata).
  const meta = readJSON(opt('info')).metadata
  const key = (k) => { const v = meta['deepseek4.' + k]; if (v === undefined) die('no deepseek4.' + k); return v }
  const nLayer = Number(key('block_count'))
  const ratios = JSON.parse(key('attention.compress_ratios')).slice(0, nLayer)
  const topK = Number(key('attention.indexer.top_k'))
  const window = Number(key('attention.sliding_window'))
  const T = gold.prompt_tokens.length
  const fail = []

  // 1. The dumped run is the golden run.
  for (const [k, rows] of [['positions', gold.positions], ['greedy', gold.greedy]]) {
    rows.forEach((g, i) => {
      const r = run[k][i]
      if (!r || r.argmax !== g.argmax || r.top.some((t, j) => t.id !== g.top[j].id || t.logit !== g.top[j].logit)) {
        fail.push(`the dumped run's ${k}[${i}] differs from the golden`)
      }
    })
  }

  const prompt = dump.find((d) => d.phase === 'prompt')
  if (!prompt) die('no prompt phase in the dump')
  const byName = (tensors) => {
    const m = new Map()
    for (const t of tensors) {
      if (t.name.includes(' (')) continue // views and reshapes of a named tensor
      if (!m.has(t.name)) m.set(t.name, [])
      m.get(t.name).push(t)
    }
    return m
  }
  const P = byName(prompt.tensors)
  const last = (m, n) => { const l = m.get(n); return l ? l[l.length - 1] : null }
  const figures = { prompt_tokens: T, layers: [] }

  ratios.forEach((r, l) => {
    const f = { layer: l, ratio: r }
    const need = (n) => { if (!P.has(n)) fail.push(`layer ${l} (ratio ${r}): ${n} was not computed`) }
    const absent = (n) => { if (P.has(n)) fail.push(`layer ${l} (ratio ${r}): ${n} was computed`) }
    if (r === 4) {
      ;[`csa_state_compress-${l}`, `lid_state_compress-${l}`, `lid_top_k-${l}`, `attn_csa_lid-${l}`].forEach(need)
      absent(`attn_raw-${l}`)
      const entries = last(P, `csa_state_compress-${l}`)
      const tk = last(P, `lid_top_k-${l}`)
      if (entries) {
        f.csa_entries = entries.ne.filter((x) => x > 1).slice(-1)[0]
        if (f.csa_entries !== Math.floor(T / 4)) fail.push(`layer ${l}: ${f.csa_entries} CSA entries, want ${Math.floor(T / 4)}`)
      }
      if (tk) {
        f.lid_top_k_shape = tk.ne.slice(0, 2)
        if (tk.ne[0] !== topK || tk.ne[1] !== T) fail.push(`layer ${l}: lid_top_k is ${tk.ne}, want [${topK}, ${T}]`)
        // At the last position the indexer must keep topK of more than topK visible entries.
        const lastRow = tk.data.slice((T - 1) * topK, T * topK)
        const visible = Math.floor(T / 4)
        f.selected_at_last = lastRow.length
        f.visible_at_last = visible
        if (!(visible > topK) || new Set(lastRow).size !== topK || lastRow.some((e) => e < 0 || e >= visible)) {
          fail.push(`layer ${l}: the indexer did not select ${topK} distinct of ${visible} visible entries at the last position`)
        }
      }
      const sc = last(P, `lid_score_masked-${l}`)
      if (sc) {
        // The gap between the k-th and (k+1)-th score where the indexer selects: how far an
        // engine's scores may drift before its selection differs from llama.cpp's.
        const n = sc.ne[0]
        let minGap = Infinity, at = -1, rowsSelecting = 0
        for (let p = 0; p < T; p++) {
          const visible = Math.floor((p + 1) / 4)
          if (visible <= topK) continue
          rowsSelecting++
          const row = sc.data.slice(p * n, p * n + visible).map((x) => (x === null ? -Infinity : x)).sort((a, b) => b - a)
          const gap = row[topK - 1] - row[topK]
          if (gap < minGap) { minGap = gap; at = p }
        }
        f.positions_where_indexer_selects = rowsSelecting
        f.min_topk_score_gap = minGap
        f.min_topk_score_gap_at = at
        f.score_scale = sc.data.slice((T - 1) * n, (T - 1) * n + Math.floor(T / 4)).reduce((a, x) => Math.max(a, Math.abs(x ?? 0)), 0)
      }
    } else if (r === 128) {
      ;[`hca_state_compress-${l}`, `attn_hca-${l}`].forEach(need)
      absent(`attn_raw-${l}`)
      f.hca_entries = Math.floor(T / 128)
      const hk = last(P, `hca_comp_k-${l}`)
      if (hk) f.hca_comp_k_shape = hk.ne
    } else {
      need(`attn_raw-${l}`)
      absent(`attn_csa_lid-${l}`)
      absent(`attn_hca-${l}`)
    }
    figures.layers.push(f)
  })

  // 2. Greedy steps: HCA layers compress exactly when (pos+1) mod 128 == 0; the
  // indexer's score gaps as above.
  const gens = dump.filter((d) => d.phase.startsWith('gen'))
  gens.forEach((d) => {
    const step = Number(d.phase.slice(3))
    const pos = T + step
    const G = byName(d.tensors)
    ratios.forEach((r, l) => {
      const sc = last(G, `lid_score_masked-${l}`)
      if (r !== 4 || !sc) return
      const visible = Math.floor((pos + 1) / 4)
      const row = sc.data.slice(0, visible).map((x) => (x === null ? -Infinity : x)).sort((a, b) => b - a)
      const gap = row[topK - 1] - row[topK]
      const f = figures.layers[l]
      if (f.min_topk_score_gap_greedy === undefined || gap < f.min_topk_score_gap_greedy) {
        f.min_topk_score_gap_greedy = gap
        f.min_topk_score_gap_greedy_at = pos
      }
    })
    ratios.forEach((r, l) => {
      if (r !== 128) return
      const did = G.has(`hca_state_compress-${l}`)
      if (did !== ((pos + 1) % 128 === 0)) fail.push(`greedy step ${step} (pos ${pos}), layer ${l}: hca_state_compress ${did ? 'ran' : 'did not run'}`)
      if (did) (figures.hca_compressed_during_decode ??= []).push({ layer: l, pos, step })
    })
  })

  // An engine whose indexer scores differ from llama.cpp's by f32 rounding must select
  // the same entries: no near-tie at the k-th place anywhere in the run.
  const minGap = Number(opt('min-gap', 5e-5))
  for (const f of figures.layers) {
    if (f.ratio !== 4) continue
    if (!(f.min_topk_score_gap >= minGap)) fail.push(`layer ${f.layer}: indexer scores ${f.min_topk_score_gap} apart at the top-k boundary (prompt pos ${f.min_topk_score_gap_at}), want ≥ ${minGap}`)
    if (!(f.min_topk_score_gap_greedy >= minGap)) fail.push(`layer ${f.layer}: indexer scores ${f.min_topk_score_gap_greedy} apart at the top-k boundary (greedy pos ${f.min_topk_score_gap_greedy_at}), want ≥ ${minGap}`)
  }

  if (fail.length) die('llama.cpp did not take the paths this model must exercise:\n  ' + fail.join('\n  '))

  // 3. The debug summary.
  const positions = chosenPositions(T, topK, window)
  const keepSteps = new Set([0, gens.length - 1, ...(figures.hca_compressed_during_decode ?? []).map((h) => h.step)])
  const phases = [{ phase: 'prompt', T, d: prompt }]
  gens.forEach((d) => { const s = Number(d.phase.slice(3)); if (keepSteps.has(s)) phases.push({ phase: d.phase, T: 1, d }) })
  const debug = {
    about: 'llama.cpp tensors of the golden run, summarised: see README.md',
    prompt_positions: positions,
    phases: phases.map(({ phase, T: t, d }) => ({
      phase,
      pos: phase === 'prompt' ? null : T + Number(phase.slice(3)),
      tensors: [...byName(d.tensors).entries()].flatMap(([name, list]) =>
        list.map((x, i) => ({ ...summarize(x, t, positions), ...(list.length > 1 ? { occurrence: i } : {}) }))),
    })),
  }
  fs.writeFileSync(opt('out'), JSON.stringify(debug) + '\n')
  process.stdout.write(JSON.stringify(figures, null, 1) + '\n')
}

const cmd = argv[0]
if (cmd === 'golden') golden(argv[1], argv[2])
else if (cmd === 'check') check()
else die('usage: see the head of this file')
