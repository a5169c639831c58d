using MaeMl.Model;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Model;

/// <summary>Reproduces one float32 forward + backward of the official PyTorch MAE (facebookresearch/mae).</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class OfficialParityTests(ITestOutputHelper output)
{
    [Fact]
    public void ForwardAndBackwardMatchTheOfficialImplementation()
    {
        using var scope = NewDisposeScope();
        using var model = OfficialFixture.Model();
        var imgs = OfficialFixture.Npy("input.npy");
        var noise = OfficialFixture.Npy("noise.npy");

        var (latent, mask, idsRestore) = model.ForwardEncoder(imgs, model.Config.MaskRatio, noise);
        Assert.True(OfficialFixture.Identical(idsRestore, OfficialFixture.Npy("ids_restore.npy")), "ids_restore differs");
        Assert.True(OfficialFixture.Identical(mask, OfficialFixture.Npy("mask.npy")), "mask differs");
        var latentErr = OfficialFixture.MaxAbsDiff(latent, OfficialFixture.Npy("latent.npy"));

        var result = model.Forward(imgs, noise);
        var predErr = OfficialFixture.MaxAbsDiff(result.Pred, OfficialFixture.Npy("pred.npy"));
        var lossErr = Math.Abs(result.Loss.item<float>() - OfficialFixture.Npy("loss.npy").item<float>());
        output.WriteLine($"latent {latentErr:E2}  pred {predErr:E2}  loss {lossErr:E2}");
        Assert.InRange(latentErr, 0, 1e-5);
        Assert.InRange(predErr, 0, 1e-5);
        Assert.InRange(lossErr, 0, 1e-5);
        Assert.Equal(24.0f, result.Mask.sum().item<float>());

        result.Loss.backward();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var gradFiles = OfficialFixture.Manifest.GetProperty("grads").EnumerateArray().ToList();
        Assert.Equal(parameters.Count(p => p.Value.requires_grad), gradFiles.Count);
        foreach (var entry in gradFiles)
        {
            var name = entry.GetProperty("name").GetString()!;
            var reference = OfficialFixture.Npy(entry.GetProperty("file").GetString()!);
            var grad = parameters[name].grad;
            Assert.True(grad is not null, $"{name} has no gradient");
            var scale = reference.abs().max().item<float>();
            var rel = OfficialFixture.MaxAbsDiff(grad!, reference) / Math.Max(scale, 1e-12);
            output.WriteLine($"{name,-36} rel {rel:E2}");
            Assert.True(rel <= 1e-4, $"gradient of {name} differs: relative error {rel:E2}");
        }
        // the fixed position tables receive no gradient
        Assert.Null(parameters["pos_embed"].grad);
        Assert.Null(parameters["decoder_pos_embed"].grad);
    }

    [Fact]
    public void SinCosTablesMatchTheOfficialOnes()
    {
        var c = OfficialFixture.Config;
        using var ours = tensor(PositionEmbedding.SinCos2D(c.EmbedDim, c.GridSize, true)).unsqueeze(0);
        using var oursDec = tensor(PositionEmbedding.SinCos2D(c.DecoderEmbedDim, c.GridSize, true)).unsqueeze(0);
        Assert.InRange(OfficialFixture.MaxAbsDiff(ours, OfficialFixture.Npy("state_dict/pos_embed.npy")), 0, 1e-7);
        Assert.InRange(OfficialFixture.MaxAbsDiff(oursDec, OfficialFixture.Npy("state_dict/decoder_pos_embed.npy")), 0, 1e-7);
    }

    [Fact]
    public void PatchifyRoundTripsAndOrdersChannelsLast()
    {
        using var imgs = arange(2 * 3 * 8 * 8, dtype: ScalarType.Float32).reshape(2, 3, 8, 8);
        using var patches = MaskedAutoencoderViT.Patchify(imgs, 4);
        Assert.Equal(new long[] { 2, 4, 48 }, patches.shape);
        // patch 1 = row 0, col 1; its first value is pixel (0, 4) of channel 0, then channel 1 of the same pixel
        Assert.Equal(imgs[0, 0, 0, 4].item<float>(), patches[0, 1, 0].item<float>());
        Assert.Equal(imgs[0, 1, 0, 4].item<float>(), patches[0, 1, 1].item<float>());
        using var back = MaskedAutoencoderViT.Unpatchify(patches, 4);
        Assert.True(OfficialFixture.Identical(back, imgs));
    }

    [Fact]
    public void MaskingKeepsTheSmallestNoiseAndRestoresOrder()
    {
        using var x = arange(8, dtype: ScalarType.Float32).reshape(1, 8, 1);
        using var noise = tensor(new float[] { .9f, .1f, .5f, .3f, .8f, .2f, .7f, .6f }).reshape(1, 8);
        var (kept, mask, idsRestore) = MaskedAutoencoderViT.RandomMasking(x, 0.75, noise);
        Assert.Equal(new float[] { 1, 5 }, kept.data<float>().ToArray());
        Assert.Equal(new float[] { 1, 0, 1, 1, 1, 0, 1, 1 }, mask.data<float>().ToArray());
        Assert.Equal(8, idsRestore.shape[1]);
    }

    [Fact]
    public void InvalidConfigurationsAreRejectedWithClearMessages()
    {
        var ex = Assert.Throws<ArgumentException>(() => new MaeConfig { ImageSize = 30, PatchSize = 4 }.Validate());
        Assert.Contains("not divisible by patch size", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => (MaePresets.MaeVitTinyPatch4Img32Dec128d2b with { NumHeads = 5 }).Validate());
        Assert.Contains("heads (5) do not divide", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => (MaePresets.MaeVitTinyPatch4Img32Dec128d2b with { MaskRatio = 1.0 }).Validate());
        Assert.Contains("mask ratio", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => MaePresets.Get("nope"));
        Assert.Contains("mae_vit_base_patch16", ex.Message);
    }

    [Fact]
    public void OfficialInitialisationHasTheExpectedStatistics()
    {
        torch.manual_seed(0);
        using var model = new MaskedAutoencoderViT(MaePresets.MaeVitTinyPatch4Img32Dec128d2b);
        var p = model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        Assert.False(p["pos_embed"].requires_grad);
        Assert.Equal(0f, p["pos_embed"][0, 0].abs().sum().item<float>());
        Assert.InRange(p["cls_token"].std().item<float>(), 0.012, 0.03);
        // xavier-uniform bound sqrt(6 / (fan_in + fan_out)) for qkv [576, 192]
        var bound = Math.Sqrt(6.0 / (192 + 576));
        Assert.InRange(p["blocks.0.attn.qkv.weight"].abs().max().item<float>(), bound * 0.95, bound);
        Assert.Equal(0f, p["blocks.0.attn.qkv.bias"].abs().sum().item<float>());
    }
}
