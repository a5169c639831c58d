using System.Numerics;
using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Training;

/// <summary>Our AdamW step equals TorchSharp's (same state, interchangeable checkpoints) and survives a collector that runs finalizers
/// all the time, the condition under which temporary Scalars get freed mid-call.</summary>
[Collection("TorchGlobalRng")]
public sealed class AdamWTests(ITestOutputHelper output)
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    static (MaskedAutoencoderViT Model, Tensor Images) Setup(int seed)
    {
        torch.manual_seed(seed);
        return (new MaskedAutoencoderViT(Tiny), torch.randn(4, 3, 16, 16));
    }

    /// <summary>Fixed gradients for step <paramref name="step"/> (one per parameter, from 1 down to 1e-9 in scale, so eps matters for
    /// some): the optimizers are compared on the same gradients, not on a training run, where Adam's normalisation turns float32
    /// rounding differences of near-zero gradients into lr-sized steps within a few steps.</summary>
    static void SetGradients(MaskedAutoencoderViT model, int step)
    {
        using var gen = new Generator((ulong)(100 + step), torch.CPU);
        int i = 0;
        foreach (var p in model.parameters().Where(p => p.requires_grad))
            using (no_grad()) p.grad = torch.randn(p.shape, generator: gen).mul_(Math.Pow(10, -(i++ % 10)));
    }

    static void Steps(MaskedAutoencoderViT model, TorchSharp.Modules.AdamW optimizer, int steps, int firstStep = 0)
    {
        for (int step = firstStep; step < firstStep + steps; step++)
        {
            using var scope = NewDisposeScope();
            foreach (var g in optimizer.ParamGroups) g.LearningRate = 1e-3 * (1 + step % 3);
            SetGradients(model, step);
            optimizer.step();
        }
    }

    /// <summary>PyTorch's AdamW update in float64, per parameter: the reference both implementations are held to.</summary>
    static List<Tensor> Reference(MaskedAutoencoderViT start, double weightDecay, int steps)
    {
        var decayed = ParameterGroups.SplitWeightDecay(start).Decay.Select(x => x.Name).ToHashSet();
        var ps = start.named_parameters().Where(x => x.parameter.requires_grad).Select(x => (P: x.parameter.detach().to(float64), M: zeros(x.parameter.shape, float64), V: zeros(x.parameter.shape, float64),
            Wd: decayed.Contains(x.name) ? weightDecay : 0)).ToList();
        using var probe = new MaskedAutoencoderViT(Tiny);
        for (int step = 0; step < steps; step++)
        {
            SetGradients(probe, step);
            double lr = 1e-3 * (1 + step % 3);
            int t = step + 1;
            foreach (var ((p, m, v, wd), g32) in ps.Zip(probe.parameters().Where(q => q.requires_grad).Select(q => q.grad!)))
            {
                var g = g32.to(float64);
                p.mul_(1 - lr * wd);
                m.mul_(0.9).add_(g, alpha: 0.1);
                v.mul_(0.95).addcmul_(g, g, value: 0.05);
                var denom = v.sqrt().div_(Math.Sqrt(1 - Math.Pow(0.95, t))).add_(1e-8);
                p.addcdiv_(m, denom, value: -lr / (1 - Math.Pow(0.9, t)));
            }
        }
        return ps.Select(x => x.P).ToList();
    }

    static double MaxDiff(IEnumerable<Tensor> a, IEnumerable<Tensor> b) => a.Zip(b).Max(p => (p.First.to(float64) - p.Second.to(float64)).abs().max().item<double>());

    [Fact]
    public void MatchesPyTorchsUpdateAndTorchSharpsAdamWAndItsCheckpoints()
    {
        var (a, imgs) = Setup(3);
        var (b, _) = Setup(3);
        using var _a = a; using var _b = b; using var _imgs = imgs;
        var reference = Reference(b, 0.05, 6);
        using var stock = new TorchSharp.Modules.AdamW(ParameterGroups.AdamWGroups(a, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        using var ours = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(b, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        Steps(a, stock, 6);
        Steps(b, ours, 6);
        double toReference = MaxDiff(b.parameters().Where(p => p.requires_grad), reference), stockToReference = MaxDiff(a.parameters().Where(p => p.requires_grad), reference), toStock = MaxDiff(a.parameters(), b.parameters());
        output.WriteLine($"after 6 steps (lr up to 3e-3): max |ours - float64 reference| = {toReference:E2}, |stock - reference| = {stockToReference:E2}, |ours - stock| = {toStock:E2}");
        Assert.True(toReference <= 2e-6, $"ours is {toReference} from PyTorch's update in float64");
        Assert.True(toStock <= 2e-6, $"ours and TorchSharp's AdamW differ by {toStock}");

        // the optimizer state is TorchSharp's: a stock checkpoint resumes in ours, and the two stay together
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) stock.save_state_dict(w);
        var (c, _) = Setup(3);
        using var _c = c;
        using (no_grad()) foreach (var (pc, pa) in c.parameters().Zip(a.parameters())) pc.copy_(pa);
        using var resumed = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(c, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        ms.Position = 0;
        using (var r = new BinaryReader(ms, System.Text.Encoding.UTF8, leaveOpen: true)) resumed.load_state_dict(r);
        Steps(a, stock, 3, firstStep: 6);
        Steps(c, resumed, 3, firstStep: 6);
        double resumedDiff = MaxDiff(a.parameters(), c.parameters());
        output.WriteLine($"stock state resumed in ours, 3 more steps: max diff {resumedDiff:E2}");
        Assert.True(resumedDiff <= 2e-6, $"resumed parameters differ by {resumedDiff}");
    }

    /// <summary>The one-pass CPU update (<see cref="FusedAdamWCpu"/>) against LibTorch's kernels on the same gradients: parameters and both
    /// moments, with weight decay, bias correction and a changing lr; one parameter above the size that splits the work over threads, and
    /// lengths that leave a scalar tail after the SIMD loop.</summary>
    [Fact]
    public void FusedCpuStepEqualsLibTorchsKernels()
    {
        var (a, imgs) = Setup(5);
        var (b, _) = Setup(5);
        using var _a = a; using var _b = b; using var _imgs = imgs;
        using var big = new Parameter(torch.randn(3 * (1 << 17) + 5));   // split into chunks, with a partial last chunk
        using var bigB = new Parameter(big.detach().clone());
        using var fused = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(a, 1e-3, 0.05).Append(new TorchSharp.Modules.AdamW.ParamGroup([big], 1e-3, 0.9, 0.95, 1e-8, 0.05, false, false)), 1e-3, 0.9, 0.95);
        using var kernels = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(b, 1e-3, 0.05).Append(new TorchSharp.Modules.AdamW.ParamGroup([bigB], 1e-3, 0.9, 0.95, 1e-8, 0.05, false, false)), 1e-3, 0.9, 0.95) { FusedCpu = false };
        Assert.True(big.numel() % Vector<float>.Count != 0 && big.numel() % (1 << 15) != 0, "the big parameter leaves neither a scalar tail nor a partial chunk");
        for (int step = 0; step < 5; step++)
        {
            using var scope = NewDisposeScope();
            foreach (var opt in new[] { fused, kernels }) foreach (var g in opt.ParamGroups) g.LearningRate = 1e-3 * (1 + step % 3);
            SetGradients(a, step); SetGradients(b, step);
            using (var gen = new Generator((ulong)(900 + step), torch.CPU)) { big.grad = torch.randn(big.shape, generator: gen); bigB.grad = big.grad.clone(); }
            fused.step(); kernels.step();
        }
        double pDiff = MaxDiff(a.parameters().Append(big), b.parameters().Append(bigB));
        var (sa, sb) = (fused.state_dict(), kernels.state_dict());
        // relative to 1 + |value|: the moments of the unit-scale gradients reach ~10, where a float32 ulp is ~1e-6
        static double RelDiff(IEnumerable<Tensor> x, IEnumerable<Tensor> y) => x.Zip(y).Max(p => ((p.First.to(float64) - p.Second.to(float64)).abs() / (p.Second.to(float64).abs() + 1)).max().item<double>());
        double mDiff = RelDiff(sa.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg), sb.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg));
        double vDiff = RelDiff(sa.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg_sq), sb.State.Select(s => ((TorchSharp.Modules.AdamW.State)s).exp_avg_sq));
        output.WriteLine($"fused vs LibTorch kernels after 5 steps: params {pDiff:E2}, exp_avg {mDiff:E2}, exp_avg_sq {vDiff:E2} (relative)");
        Assert.True(pDiff <= 1e-6, $"parameters differ by {pDiff}");
        Assert.True(mDiff <= 3e-7 && vDiff <= 3e-7, $"moments differ (relative) by {mDiff} / {vDiff}");
        int parameters = a.parameters().Count(p => p.requires_grad) + 1;
        Assert.Equal(5L * parameters, fused.FusedUpdates);   // every update of one took the fused path, none of the other's
        Assert.Equal(0L, kernels.FusedUpdates);
    }

    /// <summary>Training steps while another thread runs GC.Collect + WaitForPendingFinalizers in a loop.</summary>
    [Fact]
    public void SurvivesAConstantlyCollectingGarbageCollector()
    {
        // in a process of its own (maeml bench --gc-stress): forcing every finalizer here would also finalize whatever the other
        // tests of this long-lived host leaked, which is not what this checks
        var cli = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "MaeMl.Cli.exe" : "MaeMl.Cli");
        var start = new System.Diagnostics.ProcessStartInfo(cli, ["bench", "--gc-stress", "4", "--threads", "1"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        // MAEML_STRESS_STOCK=1 runs the same loop with TorchSharp's own AdamW, to see whether it survives (it is not expected to)
        if (Environment.GetEnvironmentVariable("MAEML_STRESS_STOCK") == "1") start.ArgumentList.Add("--stock-optimizer");
        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(3)), "the stress run did not finish in 3 minutes");
        output.WriteLine(stdout.Result + stderr.Result);
        Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}: {stdout.Result}{stderr.Result}");
        Assert.Contains("passed", stdout.Result);
    }
}
