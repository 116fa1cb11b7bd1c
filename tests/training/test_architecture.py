"""Per-layer record, surgery, masked-vs-pruned equality, loading, FLOP counts (tiny random Whisper)."""

import copy
import json

import pytest
import torch

from whisper_edge.training.architecture import (
    Architecture, ArchitectureError, EmptyAttention, apply_surgery, architecture_of, load_checkpoint, mask_model,
    save_checkpoint,
)
from whisper_edge.training.counts import flops, model_counts

# A mix that exercises every case: a layer without heads, without FFN channels, without self- or cross-attention.
KEEP = {
    "encoder": [{"heads": [1], "ffn": list(range(0, 256, 2))}, {"heads": [], "ffn": []}],
    "decoder": [{"self_heads": [], "cross_heads": [0], "ffn": list(range(100))},
                {"self_heads": [1], "cross_heads": [], "ffn": [3, 4]}],
}
PROMPT = [50258, 50276, 50359, 50363]


@pytest.fixture()
def tiny(tiny_model):
    model, processor = load_checkpoint(tiny_model)
    return model, processor


def test_pruned_equals_masked_logits_and_generate(tiny):
    model, _ = tiny
    masked, pruned = copy.deepcopy(model), copy.deepcopy(model)
    mask_model(masked, KEEP)
    arch = apply_surgery(pruned, KEEP)
    assert arch.encoder == [{"heads": 1, "ffn": 128}, {"heads": 0, "ffn": 0}]
    assert arch.decoder[0] == {"self_heads": 0, "cross_heads": 1, "ffn": 100}
    assert isinstance(pruned.model.encoder.layers[1].self_attn, EmptyAttention)
    x = torch.randn(2, 80, 600, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([PROMPT + [400, 500]] * 2)
    with torch.no_grad():
        a = masked(input_features=x, decoder_input_ids=ids).logits
        b = pruned(input_features=x, decoder_input_ids=ids).logits
        dense = model(input_features=x, decoder_input_ids=ids).logits
    assert (a - b).abs().max() < 1e-4
    assert (a - dense).abs().max() > 1e-2  # the mask did change the model
    kw = dict(input_features=x, max_new_tokens=8, language="hi", task="transcribe", do_sample=False)
    assert torch.equal(masked.generate(**kw), pruned.generate(**kw))  # KV cache path, incl. a head-less layer
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_save_and_load_pruned_checkpoint(tiny, tmp_path):
    model, processor = tiny
    apply_surgery(model, KEEP)
    save_checkpoint(model, processor, tmp_path / "p")
    rec = json.loads((tmp_path / "p" / "config.json").read_text())["whisper_edge"]["architecture"]
    assert rec["decoder"][1] == {"self_heads": 1, "cross_heads": 0, "ffn": 2}
    loaded, _ = load_checkpoint(tmp_path / "p")
    assert architecture_of(loaded).to_dict() == rec
    x = torch.randn(1, 80, 600)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        assert torch.equal(model(input_features=x, decoder_input_ids=ids).logits,
                           loaded(input_features=x, decoder_input_ids=ids).logits)


def test_record_that_disagrees_with_weights_names_the_layer(tiny, tmp_path):
    model, processor = tiny
    apply_surgery(model, KEEP)
    save_checkpoint(model, processor, tmp_path / "p")
    cfg_path = tmp_path / "p" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["whisper_edge"]["architecture"]["decoder"][0]["ffn"] = 120
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ArchitectureError, match=r"decoder layer 0 \(fc1\."):
        load_checkpoint(tmp_path / "p")
    cfg["whisper_edge"]["architecture"]["decoder"][0]["ffn"] = 999
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ArchitectureError, match="decoder layer 0: the record says ffn=999"):
        load_checkpoint(tmp_path / "p")
    cfg["whisper_edge"]["architecture"]["decoder"] = cfg["whisper_edge"]["architecture"]["decoder"][:1]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ArchitectureError, match="1 decoder layers"):
        load_checkpoint(tmp_path / "p")


def test_surgery_rejects_bad_indices(tiny):
    model, _ = tiny
    with pytest.raises(ArchitectureError, match="encoder layer 0 self_attn"):
        apply_surgery(model, {"encoder": [{"heads": [0, 5]}]})


@pytest.mark.parametrize("pruned", [False, True])
def test_analytic_flops_equal_torch_flop_counter(tiny, pruned):
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = tiny
    model.set_attn_implementation("eager")  # the counter sees eager attention's matmuls
    if pruned:
        apply_surgery(model, KEEP)
    counts = flops(architecture_of(model), vocab=model.config.vocab_size, token_ctx=len(PROMPT) + 1)
    x = torch.randn(1, 80, 600)
    # (not under no_grad: the counter's module hooks expect autograd outputs)
    with FlopCounterMode(display=False) as fc:
        enc = model.model.encoder(x).last_hidden_state
    assert fc.get_total_flops() == counts["encoder"]
    out = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([PROMPT]), use_cache=True)
    with FlopCounterMode(display=False) as fc:
        model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([[400]]), past_key_values=out.past_key_values,
              use_cache=True)
    assert fc.get_total_flops() == counts["decoder_per_token"]


def test_counts_report_removed_and_zero_parameters(tiny):
    model, _ = tiny
    dense = model_counts(model)["params"]
    with torch.no_grad():
        model.model.decoder.layers[0].fc1.weight[7] = 0
        model.model.decoder.layers[0].fc1.bias[7] = 0
        model.model.decoder.layers[0].fc2.weight[:, 7] = 0
    zeroed = model_counts(model)["params"]
    assert zeroed["removable"] == 2 * 128 + 1 and zeroed["nonzero"] <= dense["nonzero"] - 256  # (biases start at zero)
    apply_surgery(model, KEEP)
    c = model_counts(model)["params"]
    assert c["dense_total"] == dense["total"] and c["total"] == dense["total"] - c["removed"] > 0


def test_record_round_trip_and_validation():
    rec = {"audio_ctx": 300, "encoder": [{"heads": 2, "ffn": 4}], "decoder": [{"self_heads": 1, "cross_heads": 0, "ffn": 0}]}
    assert Architecture.from_dict(rec).to_dict()["decoder"] == rec["decoder"]
    with pytest.raises(ArchitectureError, match="encoder layer 0 field 'heads'"):
        Architecture.from_dict(rec | {"encoder": [{"heads": -1, "ffn": 4}]})
    with pytest.raises(ArchitectureError, match="newer"):
        Architecture.from_dict(rec | {"format": 99})


def test_bias_folding_makes_removal_of_weightless_groups_exact(tiny):
    from whisper_edge.training.architecture import fold_removed_biases

    model, _ = tiny
    with torch.no_grad():
        f = model.model.decoder.layers[0]
        f.fc1.weight[3] = 0
        f.fc1.bias[3] = 0.7  # a channel that only adds a constant
        a = model.model.encoder.layers[0].self_attn
        for lin in (a.q_proj, a.k_proj, a.v_proj):
            lin.weight[64:] = 0
        a.v_proj.bias[64:] = 0.3  # a head whose output is a constant
    keep = {"encoder": [{"heads": [0]}], "decoder": [{"ffn": [j for j in range(256) if j != 3]}]}
    pruned = copy.deepcopy(model)
    fold_removed_biases(pruned, keep)
    apply_surgery(pruned, keep)
    plain = copy.deepcopy(model)
    apply_surgery(plain, keep)
    x = torch.randn(1, 80, 600)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        ref = model(input_features=x, decoder_input_ids=ids).logits
        assert (pruned(input_features=x, decoder_input_ids=ids).logits - ref).abs().max() < 1e-4
        assert (plain(input_features=x, decoder_input_ids=ids).logits - ref).abs().max() > 1e-3
