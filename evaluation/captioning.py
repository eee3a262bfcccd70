"""Caption scores: exact match, corpus BLEU-1..4 (sacrebleu) and CIDEr-D (pycocoevalcap 1.2).

Captions are compared as normalized strings (lower-cased, words and punctuation separated by
single spaces: what textkit's WordpieceTokenizer.words/detokenize give), one generated caption per
image against one or more references. BLEU-n is sacrebleu's corpus BLEU with `max_ngram_order=n`
(13a tokenization, the brevity penalty over the corpus), reported in 0..1 (sacrebleu: 0..100);
CIDEr is pycocoevalcap's `Cider` (CIDEr-D, Vedantam et al. 2015) fed the already tokenized
strings (its Java PTB tokenizer is not used). `exact_match`: the share of captions equal to one
of their references.

For the TFLite report (evaluation/report.py), `report_scores` scores token ids: a captioner's
`serving_default` output against the reference ids of its test sample (calibration.npz `y_test`),
both [N, L] (the tokens after [START], up to and including [END], zeros after).
"""

import numpy as np

SCORES = ("exact_match", "bleu1", "bleu2", "bleu3", "bleu4", "cider")


def _references(references) -> list[list[str]]:
    return [[r] if isinstance(r, str) else list(r) for r in references]


def _norm(text: str) -> str:
    return " ".join(str(text).split())


def bleu(hypotheses, references, n=4) -> float:
    """Corpus BLEU-n in 0..1 (sacrebleu's BLEU(max_ngram_order=n), divided by 100)."""
    from sacrebleu.metrics import BLEU

    refs = _references(references)
    if len(hypotheses) != len(refs):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(refs)} references")
    most = max((len(r) for r in refs), default=0)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(most)]
    return BLEU(max_ngram_order=n).corpus_score(list(hypotheses), streams).score / 100.0


def cider(hypotheses, references) -> float:
    """CIDEr-D of pycocoevalcap (its corpus mean; 0..10, 1.0 is a typical COCO model)."""
    from pycocoevalcap.cider.cider import Cider

    refs = _references(references)
    gts = {i: [_norm(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [_norm(h)] for i, h in enumerate(hypotheses)}
    if not res:
        return 0.0
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def caption_scores(hypotheses, references) -> dict:
    """{exact_match, bleu1..bleu4, cider} of generated captions against their references."""
    refs = _references(references)
    hyps = [_norm(h) for h in hypotheses]
    exact = [h in {_norm(r) for r in rs} for h, rs in zip(hyps, refs, strict=True)]
    out = {"exact_match": float(np.mean(exact)) if exact else 0.0}
    for n in range(1, 5):
        out[f"bleu{n}"] = bleu(hyps, refs, n)
    out["cider"] = cider(hyps, refs)
    return out


def _ids_as_words(ids) -> list[str]:
    """Token ids [N, L] -> strings of ids ("5 9 7"), stopping at the first padding."""
    out = []
    for row in np.asarray(ids).reshape(len(ids), -1):
        words = []
        for token in row:
            if token == 0:
                break
            words.append(str(int(token)))
        out.append(" ".join(words))
    return out


def report_scores(outputs: dict, truth, info: dict) -> dict:
    """The TFLite report's scores: generated caption ids vs the test sample's reference ids
    (exact match, BLEU and CIDEr over the ids as words)."""
    tokens = outputs.get("tokens")
    if tokens is None or not isinstance(truth, np.ndarray) or truth.shape[0] != len(tokens):
        return dict.fromkeys(SCORES)
    return caption_scores(_ids_as_words(tokens), _ids_as_words(truth))
