using MaeMl.Model;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Model;

[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class FeaturePyramidTests
{
    [Fact]
    public void BackboneWithMaeWeightsGivesTheMaePatchFeatures()
    {
        torch.manual_seed(1);
        using var mae = new MaskedAutoencoderViT(DenseTestData.TinyEncoder());
        using var backbone = VisionTransformer.FromMae(mae, VitClassifierConfig.Backbone(mae.Config with { ImageSize = 32, DropPath = 0 }));
        mae.eval(); backbone.eval();
        using var _ = no_grad();
        using var x = randn(2, 3, 32, 32);
        using var tokens = mae.ForwardFeatures(x);                          // [N, 1+L, D]
        using var map = backbone.forward(x);                                // [N, D, 4, 4]
        Assert.Equal(new long[] { 2, 32, 4, 4 }, map.shape);
        using var expected = tokens[.., 1..].transpose(1, 2).reshape(2, 32, 4, 4);
        Assert.True(map.allclose(expected, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void BackboneForALargerInputInterpolatesThePositionTable()
    {
        using var mae = new MaskedAutoencoderViT(DenseTestData.TinyEncoder());
        using var backbone = VisionTransformer.FromMae(mae, VitClassifierConfig.Backbone(mae.Config with { ImageSize = 64, DropPath = 0 }));
        Assert.Equal(8, backbone.Config.Encoder.GridSize);
        using var x = randn(1, 3, 64, 64);
        using var map = backbone.forward(x);
        Assert.Equal(new long[] { 1, 32, 8, 8 }, map.shape);
        var names = backbone.state_dict().Keys.ToList();
        Assert.Contains("pos_embed", names);
        Assert.Contains("blocks.1.attn.qkv.weight", names);
    }

    [Fact]
    public void PyramidHasVitdetScalesStridesAndNames()
    {
        using var pyramid = new SimpleFeaturePyramid(new VisionTransformer(VitClassifierConfig.Backbone(DenseTestData.TinyEncoder())), outChannels: 16);
        Assert.Equal(new[] { 2, 4, 8, 16 }, pyramid.Strides);
        using var x = randn(2, 3, 32, 32);
        var levels = pyramid.forward(x);
        Assert.Equal(new[] { 16L, 8, 4, 2 }, levels.Select(l => l.shape[2]));
        Assert.All(levels, l => Assert.Equal(16, l.shape[1]));
        foreach (var l in levels) l.Dispose();
        var keys = pyramid.state_dict().Keys.ToList();
        Assert.Contains("simfp_1.0.weight", keys);       // scale 4: ConvTranspose2d
        Assert.Contains("simfp_1.3.weight", keys);       // second ConvTranspose2d
        Assert.Contains("simfp_2.1.weight", keys);       // scale 2: 1x1 conv
        Assert.Contains("simfp_3.0.weight", keys);       // scale 1: 1x1 conv
        Assert.Contains("simfp_4.3.weight", keys);       // scale 0.5: LayerNorm after the 3x3 conv
        Assert.Contains("net.blocks.0.norm1.weight", keys);
    }
}
