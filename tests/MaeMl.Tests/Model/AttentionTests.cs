using MaeMl.Model;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Model;

/// <summary>The bfloat16 CPU path of <see cref="Attention"/> (unfused, up to <see cref="Attention.MathPathMaxTokens"/> tokens) computes the
/// attention of the float32 fused kernel, forward and backward, with and without the relative position bias, and longer sequences keep
/// the fused kernel.</summary>
[Collection("TorchGlobalRng")]
public sealed class AttentionTests(ITestOutputHelper output)
{
    /// <summary>Output and input gradient of <paramref name="attention"/> on <paramref name="x"/> in its dtype, as float32.</summary>
    static (Tensor Out, Tensor Grad) Run(Attention attention, Tensor x, Tensor upstream)
    {
        var input = x.detach().requires_grad_(true);
        var y = attention.forward(input);
        y.mul(upstream.to(y.dtype)).sum().backward();
        return (y.detach().to(float32), input.grad!.to(float32));
    }

    static double RelErr(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / b.abs().max().item<float>();

    [Theory]
    [InlineData(17, false)]    // the tiny MAE's visible tokens
    [InlineData(197, false)]   // ViT-B/16's full sequence
    [InlineData(520, false)]   // beyond MathPathMaxTokens: the fused kernel in bfloat16 too
    [InlineData(20, true)]     // a 4 x 5 grid with relative positions (ViTDet)
    public void BFloat16PathMatchesFloat32FusedKernel(int tokens, bool relativePositions)
    {
        torch.manual_seed(7);
        using var a32 = relativePositions ? new Attention(64, 4, (4, 5)) : new Attention(64, 4);
        using (no_grad()) foreach (var p in a32.parameters()) p.normal_(0, 0.2);   // the rel-pos tables too (zero-initialised otherwise)
        using var a16 = relativePositions ? new Attention(64, 4, (4, 5)) : new Attention(64, 4);
        using (no_grad()) foreach (var (p16, p32) in a16.parameters().Zip(a32.parameters())) p16.copy_(p32);
        a16.to(ScalarType.BFloat16);
        var x = relativePositions ? randn(2, 4, 5, 64) : randn(2, tokens, 64);
        var upstream = randn_like(x);
        var (y32, g32) = Run(a32, x, upstream);
        var (y16, g16) = Run(a16, x.to(ScalarType.BFloat16), upstream);
        double outErr = RelErr(y16, y32), gradErr = RelErr(g16, g32);
        output.WriteLine($"{tokens} tokens{(relativePositions ? ", relative positions" : "")}: bfloat16 vs float32, output {outErr:E2}, input gradient {gradErr:E2} (relative to the largest value)");
        Assert.True(outErr < 0.03, $"output differs by {outErr} of its scale");
        Assert.True(gradErr < 0.03, $"input gradient differs by {gradErr} of its scale");
    }
}
