using MaeMl.Model;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Model;

/// <summary>The one encoder: the MAE's parameters keep the official order (optimizer state and checkpoints depend on it), and the
/// classifier and dense backbone are the same encoder configured differently, loading an MAE's encoder weights one way.</summary>
[Collection("TorchGlobalRng")]
public sealed class VitEncoderTests
{
    [Fact]
    public void TheMaesParametersAreInTheOfficialStateDictOrder()
    {
        var official = OfficialFixture.Manifest.GetProperty("state_dict").EnumerateArray().Select(e => e.GetProperty("name").GetString()!).ToList();
        using var mae = new MaskedAutoencoderViT(OfficialFixture.Config);
        Assert.Equal(official, mae.state_dict().Keys.ToList());
        // the optimizer sees the trainable ones in the same relative order
        Assert.Equal(official.Where(n => n is not "pos_embed" and not "decoder_pos_embed"), mae.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name));
    }

    [Fact]
    public void ClassifierAndBackboneAreTheMaeEncoderConfigured()
    {
        var c = OfficialFixture.Config;
        using var mae = OfficialFixture.Model();
        using var classifier = VisionTransformer.FromMae(mae, new VitClassifierConfig(c, NumClasses: 5, GlobalPool: false));
        using var backbone = VisionTransformer.FromMae(mae, VitClassifierConfig.Backbone(c with { ImageSize = 32 }));
        Assert.Contains("norm.weight", classifier.state_dict().Keys);
        Assert.DoesNotContain("fc_norm.weight", classifier.state_dict().Keys);
        Assert.Contains("fc_norm.weight", new VisionTransformer(new VitClassifierConfig(c, 5)).state_dict().Keys);
        Assert.Equal(new long[] { 1, 1 + 64, c.EmbedDim }, backbone.state_dict()["pos_embed"].shape);   // interpolated to the 8x8 grid

        using var x = OfficialFixture.Npy("input.npy");
        using (no_grad())
        {
            // the cls-token classifier's features are the MAE encoder's normed cls token (no masking)
            using var maeTokens = mae.ForwardFeatures(x);
            using var features = classifier.ForwardFeatures(x);
            Assert.True(OfficialFixture.MaxAbsDiff(features, maeTokens[.., 0]) < 1e-6);
            using var map = backbone.forward(nn.functional.interpolate(x, new long[] { 32, 32 }));
            Assert.Equal(new long[] { x.shape[0], c.EmbedDim, 8, 8 }, map.shape);
        }
        Assert.Throws<InvalidOperationException>(() => backbone.ForwardFeatures(x));
        Assert.Throws<ArgumentException>(() => new VitClassifierConfig(c, 3) { FeatureMap = true }.Validate());
    }
}
