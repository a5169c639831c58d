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
    static readonly MaeConfig Tiny = new() { ImageSize = 16, PatchSize = 4, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2 };

    static (MaskedAutoencoderViT Model, Tensor Images) Setup(int seed)
    {
        torch.manual_seed(seed);
        return (new MaskedAutoencoderViT(Tiny), torch.randn(4, 3, 16, 16));
    }

    static void Train(MaskedAutoencoderViT model, Tensor images, TorchSharp.Modules.AdamW optimizer, int steps, int firstStep = 0)
    {
        for (int step = firstStep; step < firstStep + steps; step++)
        {
            using var scope = NewDisposeScope();
            foreach (var g in optimizer.ParamGroups) g.LearningRate = 1e-3 * (1 + step % 3);
            using var gen = new Generator((ulong)(100 + step), torch.CPU);
            var output = model.Forward(images, torch.rand(new long[] { 4, Tiny.NumPatches }, generator: gen));
            output.Loss.backward();
            optimizer.step();
            optimizer.zero_grad();
        }
    }

    [Fact]
    public void MatchesTorchSharpsAdamWAndItsCheckpoints()
    {
        var (a, imgs) = Setup(3);
        var (b, _) = Setup(3);
        using var _a = a; using var _b = b; using var _imgs = imgs;
        using var stock = new TorchSharp.Modules.AdamW(ParameterGroups.AdamWGroups(a, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        using var ours = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(b, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        Train(a, imgs, stock, 6);
        Train(b, imgs, ours, 6);
        double maxDiff = a.parameters().Zip(b.parameters()).Max(p => (p.First - p.Second).abs().max().item<float>());
        output.WriteLine($"after 6 steps: max |stock - ours| = {maxDiff:E2}");
        Assert.True(maxDiff <= 1e-6, $"parameters differ by {maxDiff}");

        // the optimizer state is TorchSharp's: a stock checkpoint resumes in ours, and the runs stay together
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) stock.save_state_dict(w);
        var (c, _) = Setup(3);
        using var _c = c;
        using (no_grad()) foreach (var (pc, pa) in c.parameters().Zip(a.parameters())) pc.copy_(pa);
        using var resumed = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(c, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        ms.Position = 0;
        using (var r = new BinaryReader(ms, System.Text.Encoding.UTF8, leaveOpen: true)) resumed.load_state_dict(r);
        Train(a, imgs, stock, 3, firstStep: 6);
        Train(c, imgs, resumed, 3, firstStep: 6);
        double resumedDiff = a.parameters().Zip(c.parameters()).Max(p => (p.First - p.Second).abs().max().item<float>());
        output.WriteLine($"stock state resumed in ours, 3 more steps: max diff {resumedDiff:E2}");
        Assert.True(resumedDiff <= 1e-6, $"resumed parameters differ by {resumedDiff}");
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
