using MaeMl.Interop;
using TorchSharp;
using TorchSharp.PyBridge;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Interop;

/// <summary>Hugging Face ViTMAE safetensors, written by the test from the fixture's tensors under transformers' names.</summary>
public class HuggingFaceViTMaeTests(ITestOutputHelper output)
{
    /// <summary>The fixture's state dict under ViTMAEForPreTraining names (or ViTMAEModel's, encoder only), spelled out
    /// here independently of the library: modeling_vit_mae.py's module tree, q/k/v split as convert_vit_mae_to_pytorch.py.</summary>
    static Dictionary<string, Tensor> HuggingFaceStateDict(bool forPreTraining)
    {
        var p = forPreTraining ? "vit." : "";
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, value) in OfficialFixture.StateDict())
        {
            var parts = name.Split('.');
            string? hf = name switch
            {
                "cls_token" => $"{p}embeddings.cls_token",
                "pos_embed" => $"{p}embeddings.position_embeddings",
                "patch_embed.proj.weight" => $"{p}embeddings.patch_embeddings.projection.weight",
                "patch_embed.proj.bias" => $"{p}embeddings.patch_embeddings.projection.bias",
                "norm.weight" => $"{p}layernorm.weight",
                "norm.bias" => $"{p}layernorm.bias",
                "mask_token" or "decoder_pos_embed" => $"decoder.{name}",
                _ when name.StartsWith("decoder_embed.") || name.StartsWith("decoder_norm.") || name.StartsWith("decoder_pred.") => $"decoder.{name}",
                _ => null,
            };
            if (hf is null)
            {
                bool decoder = parts[0] == "decoder_blocks";
                var layer = decoder ? $"decoder.decoder_layers.{parts[1]}" : $"{p}encoder.layer.{parts[1]}";
                var kind = parts[^1];
                var sub = string.Join('.', parts[2..^1]);
                if (sub == "attn.qkv")
                {
                    long d = value.shape[0] / 3;
                    result[$"{layer}.attention.attention.query.{kind}"] = value[..(int)d].clone();
                    result[$"{layer}.attention.attention.key.{kind}"] = value[(int)d..(int)(2 * d)].clone();
                    result[$"{layer}.attention.attention.value.{kind}"] = value[(int)(2 * d)..].clone();
                    continue;
                }
                hf = $"{layer}." + sub switch
                {
                    "attn.proj" => "attention.output.dense", "norm1" => "layernorm_before", "norm2" => "layernorm_after",
                    "mlp.fc1" => "intermediate.dense", "mlp.fc2" => "output.dense", _ => throw new InvalidOperationException(name),
                } + $".{kind}";
            }
            if (!forPreTraining && hf.StartsWith("decoder.")) continue;
            result[hf] = value;
        }
        return result;
    }

    [Fact]
    public void ViTMaeForPreTrainingSafetensorsReproduceTheFixture()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        var path = Path.Combine(dir, "model.safetensors");
        var hf = HuggingFaceStateDict(forPreTraining: true);
        Assert.Contains("vit.encoder.layer.1.attention.attention.value.weight", hf.Keys);
        Assert.Contains("decoder.decoder_layers.0.intermediate.dense.weight", hf.Keys);
        Safetensors.SaveStateDict(path, hf);

        using var model = MaeModelFile.LoadMae(path, new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 }, out var report);
        output.WriteLine(report.ToString());
        Assert.True(report.IsComplete);
        Assert.Contains(report.Notes, n => n.Contains("ViTMAEForPreTraining"));
        var result = model.Forward(OfficialFixture.Npy("input.npy"), OfficialFixture.Npy("noise.npy"));
        var predErr = OfficialFixture.MaxAbsDiff(result.Pred, OfficialFixture.Npy("pred.npy"));
        var lossErr = Math.Abs(result.Loss.item<float>() - OfficialFixture.Npy("loss.npy").item<float>());
        output.WriteLine($"HF safetensors: pred max abs err {predErr:E2}, loss abs err {lossErr:E2}");
        Assert.InRange(predErr, 0, 1e-5);
        Assert.InRange(lossErr, 0, 1e-5);

        // and our Hugging Face export names every tensor exactly as transformers does
        var exported = Path.Combine(dir, "exported.safetensors");
        MaeModelFile.Save(model, exported, StateDictNaming.HuggingFace);
        var back = Safetensors.LoadStateDict(exported);
        Assert.Equal(hf.Keys.Order(), back.Keys.Order());
        foreach (var (name, value) in hf) Assert.True(OfficialFixture.Identical(value, back[name]), name);
    }

    [Fact]
    public void ViTMaeModelSafetensorsWithConfigJsonGiveTheLatent()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        var path = Path.Combine(dir, "model.safetensors");
        Safetensors.SaveStateDict(path, HuggingFaceStateDict(forPreTraining: false));
        // heads and LayerNorm eps from the config.json that save_pretrained writes beside the weights
        File.WriteAllText(Path.Combine(dir, "config.json"), """
            { "model_type": "vit_mae", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
              "image_size": 16, "patch_size": 4, "num_channels": 3, "layer_norm_eps": 1e-6, "decoder_hidden_size": 16,
              "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2, "decoder_intermediate_size": 64,
              "mask_ratio": 0.75, "norm_pix_loss": true }
            """);
        using var model = MaeModelFile.LoadMae(path, new MaeLoadOptions { AllowMissingDecoder = true }, out var report);
        output.WriteLine(report.ToString());
        Assert.Contains(report.Notes, n => n.Contains("ViTMAEModel"));
        Assert.Contains(report.Notes, n => n.Contains("encoder heads: 2 (from config.json)"));
        Assert.Equal(OfficialFixture.Config, model.Config);
        var (latent, _, _) = model.ForwardEncoder(OfficialFixture.Npy("input.npy"), 0.75, OfficialFixture.Npy("noise.npy"));
        var latentErr = OfficialFixture.MaxAbsDiff(latent, OfficialFixture.Npy("latent.npy"));
        output.WriteLine($"HF ViTMAEModel: latent max abs err {latentErr:E2}");
        Assert.InRange(latentErr, 0, 1e-5);
    }

    [Fact]
    public void PartialQueryKeyValueIsReportedNotGuessed()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        var path = Path.Combine(dir, "partial.safetensors");
        var hf = HuggingFaceStateDict(forPreTraining: true);
        hf.Remove("vit.encoder.layer.0.attention.attention.key.weight");
        Safetensors.SaveStateDict(path, hf);
        var ex = Assert.Throws<StateDictMismatchException>(() => MaeModelFile.LoadMae(path, new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 }));
        Assert.Contains("blocks.0.attn.qkv.weight", ex.Report.Missing);
        Assert.Contains("vit.encoder.layer.0.attention.attention.query.weight", ex.Report.Unexpected);
    }
}
