using System.Diagnostics;
using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Cli;

/// <summary>
/// <c>maeml bench --gc-stress SECONDS</c>: MAE training steps and bare optimizer steps while another thread loops
/// <c>GC.Collect(); GC.WaitForPendingFinalizers()</c>, the condition under which TorchSharp 0.107 frees a temporary
/// <see cref="Scalar"/> mid-call ("Expected false to be true"). It runs in a process of its own (the test suite starts it as a
/// child process): forcing every finalizer of a long-lived process also finalizes whatever unrelated objects it leaked.
/// </summary>
public static class GcStress
{
    static readonly MaeConfig Tiny = new() { ImageSize = 16, PatchSize = 4, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2 };

    /// <summary>Runs for at least <paramref name="duration"/> and 20 training steps; returns 0 when every step succeeded and the weights
    /// stayed finite, 1 with the LibTorch error otherwise.</summary>
    public static int Run(TimeSpan duration, bool stockOptimizer)
    {
        torch.manual_seed(5);
        using var model = new MaskedAutoencoderViT(Tiny);
        using var images = torch.randn(4, 3, 16, 16);
        var groups = ParameterGroups.AdamWGroups(model, 1e-3, 0.05);
        using TorchSharp.Modules.AdamW optimizer = stockOptimizer
            ? new TorchSharp.Modules.AdamW(groups, 1e-3, 0.9, 0.95)
            : new MaeMl.Training.AdamW(groups, 1e-3, 0.9, 0.95);
        using var gradScale = 1e-3f.ToScalar();
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() => { while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); collections++; } });
        collector.Start();
        int steps = 0;
        var watch = Stopwatch.StartNew();
        string what = stockOptimizer ? "TorchSharp's AdamW" : "MaeMl's AdamW";
        try
        {
            while (watch.Elapsed < duration || steps < 20)
            {
                // the optimizer alone, many times per model step and outside any dispose scope: where the temporaries were
                for (int k = 0; k < 5; k++)
                {
                    foreach (var p in model.parameters())
                    {
                        using var g = torch.randn_like(p);   // held until the setter returned: a temporary could be finalized inside it
                        g.mul_(gradScale);
                        p.grad = g;
                    }
                    optimizer.step();
                }
                using (var scope = NewDisposeScope())
                {
                    using var gen = new Generator((ulong)(100 + steps), torch.CPU);
                    var output = model.Forward(images, torch.rand(new long[] { 4, Tiny.NumPatches }, generator: gen));
                    output.Loss.backward();
                    optimizer.step();
                    optimizer.zero_grad();
                }
                steps++;
            }
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            Console.WriteLine($"gc-stress with {what}: failed after {steps} training steps and {collections} forced collections: {e.Message.Split('\n')[0].Trim()}");
            return 1;
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        bool finite = model.parameters().All(p => torch.isfinite(p).all().item<bool>());
        Console.WriteLine($"gc-stress with {what}: {steps} training steps + {5 * steps} optimizer steps under {collections} forced collections " +
                          $"in {watch.Elapsed.TotalSeconds:F1} s: {(finite ? "passed" : "failed (non-finite weights)")}");
        return finite ? 0 : 1;
    }
}
