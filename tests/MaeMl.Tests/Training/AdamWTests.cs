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
        var (model, imgs) = Setup(5);
        using var _m = model; using var _i = imgs;
        // MAEML_STRESS_STOCK=1 runs the same loop with TorchSharp's own AdamW, to see whether it survives (it is not expected to)
        using TorchSharp.Modules.AdamW optimizer = Environment.GetEnvironmentVariable("MAEML_STRESS_STOCK") == "1"
            ? new TorchSharp.Modules.AdamW(ParameterGroups.AdamWGroups(model, 1e-3, 0.05), 1e-3, 0.9, 0.95)
            : new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(model, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); collections++; }
        });
        collector.Start();
        try
        {
            int steps = 0;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (watch.Elapsed < TimeSpan.FromSeconds(4) || steps < 20)
            {
                // the optimizer alone, many times per model step: that is where the temporaries were
                for (int k = 0; k < 5; k++)
                {
                    foreach (var p in model.parameters()) p.grad = torch.randn_like(p) * 1e-3f;
                    optimizer.step();
                }
                Train(model, imgs, optimizer, 1, steps);
                steps++;
            }
            output.WriteLine($"{steps} training steps + {5 * steps} optimizer steps under {collections} forced collections in {watch.Elapsed.TotalSeconds:F1} s");
            Assert.All(model.parameters(), p => Assert.True(torch.isfinite(p).all().item<bool>()));
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }
}
