"""The induction circuit on the real SmolLM2-135M-Instruct: the strongest k-path source of its top
induction head is a previous-token head (path patching, every head of every earlier layer)."""

from induction_nnsight import Execution, repeated_tokens
from induction_nnsight.causal.circuit import CircuitMeasure, circuit, top_induction_heads
from induction_nnsight.probes.tokens import Probe
from induction_nnsight.scores.heads import head_scores

BATCH, SEQ_LEN = 2, 20


def test_top_induction_head_reads_its_keys_from_a_previous_token_head(smollm2):
    tokens = repeated_tokens(BATCH, SEQ_LEN, seed=0, bos_token_id=1, vocab_size=49152)
    target = top_induction_heads(smollm2, tokens, SEQ_LEN, 1)[0]
    measure = CircuitMeasure(targets=[target], paths=("k",), composition=False)
    result = circuit(smollm2, tokens, SEQ_LEN, measure=measure, execution=Execution(progress=False))
    strongest = result.strongest(target, "k", 3)
    probe = Probe("repeated", tokens, SEQ_LEN, 1, 1 + SEQ_LEN)
    prev = head_scores(smollm2, probe, kinds=("previous_token",), loss=False, per_row=False).mean("previous_token")
    source = strongest[0].source
    rank = sorted(((float(prev[l, h]), (l, h)) for l in range(target[0]) for h in range(prev.shape[1])), reverse=True)
    top_prev = [head for _, head in rank[:5]]
    print(
        f"target L{target[0]}H{target[1]} (clean {result.clean_scores[target]:.3f}); strongest k sources: "
        + ", ".join(
            f"L{e.source[0]}H{e.source[1]} {e.effect:+.3f} (previous-token {float(prev[e.source]):.2f})"
            for e in strongest
        )
        + "; top previous-token heads before it: "
        + ", ".join(f"L{l}H{h} {s:.2f}" for s, (l, h) in rank[:5])
    )
    assert strongest[0].effect < -0.1  # removing it from the keys alone costs a real share of the stripe
    assert float(prev[source]) >= 0.4 or source in top_prev
