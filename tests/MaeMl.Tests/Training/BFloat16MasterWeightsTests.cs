using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Training;

/// <summary>The bfloat16 working copy fused into <see cref="MaeMl.Training.AdamW"/> (the step reads the copy's gradients and writes its
/// weights) gives the numbers of the unfused push / step / pull, bit for bit, with and without gradient accumulation.</summary>
[Collection("TorchGlobalRng")]
public sealed class BFloat16MasterWeightsTests
{
    static double MaxAbsDiff(IEnumerable<Tensor> a, IEnumerable<Tensor> b) =>
        a.Zip(b).Max(p => (p.First.to(float64) - p.Second.to(float64)).abs().max().item<double>());

    sealed class Run : IDisposable
    {
        public readonly MaskedAutoencoderViT Master;
        public readonly BFloat16MasterWeights<MaskedAutoencoderViT> Mixed;
        public readonly MaeMl.Training.AdamW Optimizer;

        public Run(bool fused)
        {
            torch.manual_seed(3);
            Master = new MaskedAutoencoderViT(TestModels.Tiny);
            Optimizer = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(Master, 1e-3, 0.05), 1e-3, 0.9, 0.95);
            Mixed = new BFloat16MasterWeights<MaskedAutoencoderViT>(Master, () => new MaskedAutoencoderViT(Master.Config));
            if (fused) Mixed.FuseInto(Optimizer);
        }

        public void Step(int step, int microBatches)
        {
            for (int micro = 0; micro < microBatches; micro++)
            {
                using var scope = NewDisposeScope();
                Mixed.PullWeights();
                using var gen = new Generator((ulong)(50 + 10 * step + micro), torch.CPU);
                var imgs = torch.randn(new long[] { 4, 3, 16, 16 }, generator: gen);
                var noise = torch.rand(new long[] { 4, Master.Config.NumPatches }, generator: gen);
                Mixed.Work.Forward(imgs, noise).Loss.div(microBatches).backward();
                Mixed.PushGradients();
            }
            foreach (var g in Optimizer.ParamGroups) g.LearningRate = 1e-3 * (1 + step % 3);
            Optimizer.step();
            Optimizer.zero_grad();
        }

        public void Dispose() { Mixed.Dispose(); Optimizer.Dispose(); Master.Dispose(); }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void FusedStepEqualsPushStepPullBitForBit(int microBatches)
    {
        using var fused = new Run(fused: true);
        using var plain = new Run(fused: false);
        for (int step = 0; step < 4; step++) { fused.Step(step, microBatches); plain.Step(step, microBatches); }
        fused.Mixed.PullWeights(); plain.Mixed.PullWeights();   // the working copies as the next forward sees them
        Assert.Equal(0.0, MaxAbsDiff(fused.Master.parameters(), plain.Master.parameters()));
        Assert.Equal(0.0, MaxAbsDiff(fused.Mixed.Work.parameters(), plain.Mixed.Work.parameters()));
        var (sa, sb) = (fused.Optimizer.state_dict(), plain.Optimizer.state_dict());
        Assert.Equal(0.0, MaxAbsDiff(sa.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg_sq), sb.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg_sq)));
        Assert.Equal(0.0, MaxAbsDiff(sa.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg), sb.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg)));
        // the working copy mirrors the master after every step (bfloat16 rounding of it)
        Assert.Equal(0.0, MaxAbsDiff(fused.Mixed.Work.parameters(), fused.Master.parameters().Select(p => p.to_type(ScalarType.BFloat16))));
        int trainable = fused.Master.parameters().Count(p => p.requires_grad);
        Assert.Equal(4L * trainable, fused.Optimizer.FusedUpdates);
        if (microBatches == 1)   // nothing went through a float32 gradient: the step read the working copy's
            Assert.All(fused.Master.parameters().Where(p => p.requires_grad), p => { using var g = p.grad; Assert.True(g is null || g.abs().max().item<float>() == 0); });
    }

    /// <summary>The kernel alone against widen / <see cref="FusedAdamWCpu.Step"/> / round: a length split over threads with a partial chunk
    /// and a scalar tail, gradients that are NaN, infinite or bfloat16-subnormal, and weights that round up, down and to even.</summary>
    [Fact]
    public void MixedKernelEqualsWidenStepRound()
    {
        torch.manual_seed(11);
        int n = 3 * (1 << 17) + 7;
        using var g16 = torch.randn(n).mul_(torch.logspace(-40, 2, n)).to_type(ScalarType.BFloat16);
        using (no_grad()) { g16[5] = float.NaN; g16[6] = float.PositiveInfinity; g16[n - 1] = 1e-39f; }
        using var p = torch.randn(n);
        using var m = torch.randn(n).mul_(0.01);
        using var v = torch.rand(n).mul_(0.01);
        using var work = torch.zeros(n, ScalarType.BFloat16);
        using var p2 = p.clone();
        using var m2 = m.clone();
        using var v2 = v.clone();
        using var g32 = g16.to_type(ScalarType.Float32);
        using var g16Copy = g16.clone();
        (float decay, float w1, float b2, float omb2, float eps, float step) = (0.9999f, 0.1f, 0.95f, 0.05f, 1e-8f, -1e-3f);
        FusedAdamWCpu.StepMixed(p, g16, m, v, work, decay, w1, b2, omb2, eps, step);
        FusedAdamWCpu.Step(p2, g32, m2, v2, decay, w1, b2, omb2, eps, step);
        using var expectedWork = p2.to_type(ScalarType.BFloat16);
        Assert.True(p.isnan().eq(p2.isnan()).all().item<bool>(), "NaN weights differ");
        Assert.Equal(0.0, (p.nan_to_num() - p2.nan_to_num()).abs().max().item<float>());
        Assert.True(m.nan_to_num().eq(m2.nan_to_num()).all().item<bool>() && v.nan_to_num().eq(v2.nan_to_num()).all().item<bool>());
        using var w32 = work.to_type(ScalarType.Float32);   // exact widening
        using var e32 = expectedWork.to_type(ScalarType.Float32);
        Assert.True(w32.isnan().eq(e32.isnan()).all().item<bool>() && w32.nan_to_num().eq(e32.nan_to_num()).all().item<bool>(), "bfloat16 weights differ from LibTorch's rounding");
        Assert.True(w32.isnan().any().item<bool>(), "the NaN gradient reached a weight, so NaN rounding was compared");
        Assert.Equal(0L, g16.count_nonzero().item<long>());   // the gradient was zeroed in the same pass
        Assert.True(g16Copy.count_nonzero().item<long>() > n / 2);
    }
}
