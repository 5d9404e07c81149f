import torch
from induction_nnsight import scan, repeated_tokens
from induction_nnsight.remote import RemoteSettings

def test_smoke(ndif, tiny_model):
    toks = repeated_tokens(3, 8, seed=0, low=1, high=128, bos_token_id=0, vocab_size=128)
    s = RemoteSettings(ndif.host)
    r = scan(ndif.models["gpt2"], toks, 8, remote=s)
    l = scan(tiny_model("gpt2", "sdpa"), toks, 8)
    print(s.transfers, r.induction_scores, l.induction_scores)
    print(ndif.server.log("worker"))
    assert torch.equal(r.loss_by_position, l.loss_by_position)
    assert torch.equal(r.induction_scores, l.induction_scores)
