using System.CommandLine;
using System.Diagnostics;
using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Cli.Commands;

/// <summary>
/// <c>maeml bench</c>: training-step throughput of MAE against the full-sequence design it replaced, achieved GFLOP/s
/// against a large matrix multiply, and data-loading throughput, all measured side by side in one process.
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var data = new Option<string?>(Vocabulary.Data) { Description = "Image folder for the data-loading measurement (default: generated 32x32 JPEGs)." };
        var batch = new Option<int>("--batch-size") { Description = "Images per step of the small-image model (and of the data loader).", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "Timed steps per measurement (small-image model; MAE and full-sequence steps alternate).", DefaultValueFactory = _ => 20 };
        var vitbBatch = new Option<int>("--vitb-batch-size") { Description = "Images per step of the ViT-B/16 measurement.", DefaultValueFactory = _ => 8 };
        var vitbSteps = new Option<int>("--vitb-steps") { Description = "Timed steps per ViT-B/16 measurement.", DefaultValueFactory = _ => 3 };
        var skipVitb = new Option<bool>("--skip-vitb") { Description = "Skip the ViT-B/16 measurement." };
        var vitlBatch = new Option<int>("--vitl-batch-size") { Description = "Images per step of the ViT-L/16 measurement.", DefaultValueFactory = _ => 4 };
        var vitlSteps = new Option<int>("--vitl-steps") { Description = "Timed steps per ViT-L/16 measurement (0 skips it).", DefaultValueFactory = _ => 2 };
        var gcStress = new Option<double>("--gc-stress") { Description = "Instead of the benchmark: train and step the optimizer for this many seconds while another thread forces garbage collections (TorchSharp Scalar lifetime check); exit 1 on a LibTorch error.", DefaultValueFactory = _ => 0 };
        var stock = new Option<bool>("--stock-optimizer") { Description = "With --gc-stress: use TorchSharp's own AdamW instead of MaeMl's scalar-safe one." };
        var pytorch = new Option<string?>("--pytorch") { Description = "A Python with PyTorch (e.g. /usr/bin/python3 with Debian's python3-torch): also time the official MAE step (tools/pytorch/bench_official.py) on the same configurations, in this run." };
        var threads = Vocabulary.ThreadsOption();
        var command = new Command("bench", "Benchmark MAE training steps (MAE vs full-sequence baseline, fp32 and bf16), GFLOP/s against GEMM, and data loading.")
        { data, batch, steps, vitbBatch, vitbSteps, skipVitb, vitlBatch, vitlSteps, gcStress, stock, pytorch, threads };
        command.SetAction(r =>
        {
            Vocabulary.ApplyThreads(r.GetValue(threads));
            if (r.GetValue(gcStress) > 0) return GcStress.Run(TimeSpan.FromSeconds(r.GetValue(gcStress)), r.GetValue(stock));
            var official = r.GetValue(pytorch) is { } python ? new OfficialPyTorch(python, OfficialPyTorch.FindScript()) : null;
            Run(r.GetValue(data), r.GetValue(batch), r.GetValue(steps), r.GetValue(vitbBatch), r.GetValue(vitbSteps), r.GetValue(skipVitb), r.GetValue(vitlBatch), r.GetValue(vitlSteps), official);
            return 0;
        });
        return command;
    }

    public static void Run(string? dataDir, int batch, int steps, int vitbBatch, int vitbSteps, bool skipVitb, int vitlBatch = 4, int vitlSteps = 0,
                           OfficialPyTorch? official = null)
    {
        Console.WriteLine($"torch threads {torch.get_num_threads()}, {Environment.ProcessorCount} logical CPUs; CPU allocator: {(MaeMl.Native.CpuAllocator.Settings is { Length: > 0 } a ? a : "glibc defaults")}");
        double gemm32 = GemmGflops(ScalarType.Float32), gemm16 = GemmGflops(ScalarType.BFloat16);
        Console.WriteLine($"large GEMM (2048^3): float32 {gemm32:F1} GFLOP/s, bfloat16 {gemm16:F1} GFLOP/s");

        var tiny = MaePresets.MaeVitTinyPatch4Img32Dec128d2b;
        Console.WriteLine($"\n(a) {Describe(tiny)}, batch {batch}");
        var results = new Dictionary<string, double>();
        var paired = new Dictionary<TrainingPrecision, double?>();
        foreach (var precision in new[] { TrainingPrecision.Float32, TrainingPrecision.BFloat16 })
        {
            var pair = PrecisionProbe.MeasureInterleaved(tiny, batch, precision, warmup: 3, steps: steps);   // MAE and full-sequence steps alternated
            paired[precision] = PrecisionProbe.MedianPairedRatio(pair.FullSequence, pair.Mae);
            foreach (var full in new[] { false, true })
            {
                var timing = full ? pair.FullSequence : pair.Mae;
                double ips = timing.ImagesPerSecond;
                double flops = full ? TrainingFlops.FullSequenceStep(tiny, batch) : TrainingFlops.MaeStep(tiny, batch);
                double gflops = flops * ips / batch / 1e9;
                results[$"{precision}/{full}"] = ips;
                Console.WriteLine($"  {(full ? "full-sequence baseline" : "MAE"),-24} {precision,-9} {ips,8:F1} img/s  {batch / ips,6:F3} s/step  " +
                                  $"{gflops,6:F1} GFLOP/s = {100 * gflops / gemm32,5:F1}% of fp32 GEMM, optimizer step {100 * timing.OptimizerShare,4:F1}%{Copies(timing)} of the step");
            }
        }
        Console.WriteLine($"  bfloat16 over float32 (MAE): {results["BFloat16/False"] / results["Float32/False"]:F2}x");
        var auto = CpuFeatures.HasNativeBFloat16 ? PrecisionProbe.Faster(results["Float32/False"], results["BFloat16/False"]) : TrainingPrecision.Float32;
        Console.WriteLine($"  precision Auto picks {auto} here (float32 {results["Float32/False"]:F1} img/s, bfloat16 {results["BFloat16/False"]:F1} img/s; bfloat16 only when >5% faster)");
        if (official is null) Console.WriteLine("  official PyTorch MAE: not measured in this run (--pytorch PYTHON measures it; no constant is printed in its place)");
        else official.Report(tiny, batch, steps, warmup: 3, auto == TrainingPrecision.Float32
            ? [("Float32 (Auto's pick)", results["Float32/False"])]
            : [("Float32", results["Float32/False"]), ("BFloat16 (Auto's pick)", results["BFloat16/False"])]);

        double tinyRatio = TrainingFlops.FullSequenceStep(tiny, batch) / TrainingFlops.MaeStep(tiny, batch);
        foreach (var p in new[] { TrainingPrecision.Float32, TrainingPrecision.BFloat16 })
        {
            double speedup = results[$"{p}/False"] / results[$"{p}/True"];
            Console.WriteLine($"  {p}: MAE speedup {speedup:F2}x against a FLOP ratio of {tinyRatio:F2}x = {100 * speedup / tinyRatio:F0}% of it{Paired(paired[p], tinyRatio)}");
        }

        var large = new List<(string Name, MaeConfig Config, int Batch, int Steps)>();
        if (!skipVitb) large.Add(("(b)", MaePresets.MaeVitBasePatch16Dec512d8b, vitbBatch, vitbSteps));
        if (vitlSteps > 0) large.Add(("(b2)", MaePresets.MaeVitLargePatch16Dec512d8b, vitlBatch, vitlSteps));
        foreach (var (name, config, b, stepsLarge) in large)
        {
            Console.WriteLine($"\n{name} {Describe(config)}, batch {b}, {auto}");
            var ips = new Dictionary<bool, double>();
            GC.Collect(); GC.WaitForPendingFinalizers();   // tensors of the earlier configurations released...
            MaeMl.Native.CpuAllocator.ReleaseFreeMemory();   // ...and their heap handed back: the configuration starts as a fresh process would
            var pair = PrecisionProbe.MeasureInterleaved(config, b, auto, warmup: 1, steps: stepsLarge);   // MAE and full-sequence steps alternated
            foreach (var full in new[] { false, true })
            {
                var timing = full ? pair.FullSequence : pair.Mae;
                ips[full] = timing.ImagesPerSecond;
                double flops = full ? TrainingFlops.FullSequenceStep(config, b) : TrainingFlops.MaeStep(config, b);
                Console.WriteLine($"  {(full ? "full-sequence baseline" : "MAE"),-24} {auto,-9} {ips[full],8:F2} img/s  {b / ips[full],6:F2} s/step  {flops * ips[full] / b / 1e9,6:F1} GFLOP/s, optimizer step {100 * timing.OptimizerShare,4:F1}%{Copies(timing)} of the step");
            }
            double ratio = TrainingFlops.FullSequenceStep(config, b) / TrainingFlops.MaeStep(config, b), speedup = ips[false] / ips[true];
            Console.WriteLine($"  MAE speedup over full-sequence: {speedup:F2}x against a FLOP ratio of {ratio:F2}x = {100 * speedup / ratio:F0}% of it" +
                              Paired(PrecisionProbe.MedianPairedRatio(pair.FullSequence, pair.Mae), ratio));
            var ((fused, parameters), (kernels, _)) = (AdamWStepSeconds(config, fusedCpu: true), AdamWStepSeconds(config, fusedCpu: false));
            Console.WriteLine($"  AdamW step alone ({parameters / 1e6:F0} M parameters, float32): one-pass CPU update {fused:F3} s, LibTorch's kernels {kernels:F3} s ({kernels / fused:F2}x)");
            official?.Report(config, b, stepsLarge, warmup: 1, (auto.ToString(), ips[false]));
        }

        Console.WriteLine("\n(c) data loading (decode + RandomResizedCrop + flip + normalise, background threads)");
        string dir = dataDir ?? GenerateJpegs();
        var folder = ImageFolder.Unlabelled(dir, 4096);
        var loader = new PrefetchingBatchLoader(folder.Samples, SampleTransforms.Pretrain(tiny.ImageSize), tiny.ImageSize, batch, true, true, 0, prefetch: 8);
        var sw = Stopwatch.StartNew();
        long n = loader.Epoch(0).Sum(x => (long)x.Count);
        double loadIps = n / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"  {n} images from {dir}: {loadIps:F0} img/s = {loadIps / Math.Max(results["Float32/False"], results["BFloat16/False"]):F1}x the fastest MAE step rate");
    }

    /// <summary>Seconds of one <see cref="AdamW"/> step over <paramref name="c"/>'s trainable parameters (random gradients; the mean of 3 after 1),
    /// and how many parameters that is.</summary>
    static (double Seconds, long Parameters) AdamWStepSeconds(MaeConfig c, bool fusedCpu)
    {
        using var model = new MaskedAutoencoderViT(c);
        using var optimizer = new AdamW(ParameterGroups.AdamWGroups(model, 1e-4, 0.05), 1e-4, 0.9, 0.95) { FusedCpu = fusedCpu };
        using (no_grad()) foreach (var p in model.parameters().Where(p => p.requires_grad)) p.grad = randn_like(p);
        optimizer.step();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 3; i++) optimizer.step();
        return (sw.Elapsed.TotalSeconds / 3, model.parameters().Where(p => p.requires_grad).Sum(p => p.numel()));
    }

    /// <summary>The median of the step pairs' ratios beside the ratio of the totals (see <see cref="PrecisionProbe.MedianPairedRatio"/>).</summary>
    static string Paired(double? median, double flopRatio) =>
        median is { } m ? $"; median of the adjacent step pairs' ratios {m:F2}x = {100 * m / flopRatio:F0}%" : "";

    static string Copies(PrecisionProbe.StepTiming t) => t.CopyShare > 0 ? $", bf16 copies {100 * t.CopyShare:F1}%" : "";

    static string Describe(MaeConfig c) =>
        $"{c.ImageSize}x{c.ImageSize}/patch {c.PatchSize}, encoder {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads), decoder {c.DecoderEmbedDim}x{c.DecoderDepth} ({c.DecoderNumHeads} heads)";

    static double GemmGflops(ScalarType dtype, int n = 2048, int reps = 6)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n).to_type(dtype);
        var b = randn(n, n).to_type(dtype);
        a.mm(b).Dispose();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++) a.mm(b).Dispose();
        return 2.0 * n * n * n * reps / sw.Elapsed.TotalSeconds / 1e9;
    }

    static string GenerateJpegs()
    {
        var dir = Path.Combine(Path.GetTempPath(), "maeml-bench-images");
        if (Directory.Exists(dir) && Directory.GetFiles(dir).Length >= 2048) return dir;
        Directory.CreateDirectory(dir);
        var rng = new Random(0);
        for (int i = 0; i < 2048; i++)
        {
            using var bmp = new SkiaSharp.SKBitmap(32, 32);
            var px = new byte[32 * 32 * 4];
            rng.NextBytes(px);
            System.Runtime.InteropServices.Marshal.Copy(px, 0, bmp.GetPixels(), px.Length);
            using var img = SkiaSharp.SKImage.FromBitmap(bmp);
            using var jpg = img.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 75);
            File.WriteAllBytes(Path.Combine(dir, $"{i:D4}.jpg"), jpg.ToArray());
        }
        return dir;
    }
}

/// <summary>The official MAE pretraining step timed by PyTorch itself (<c>tools/pytorch/bench_official.py</c>: models_mae, AdamW over timm's
/// groups, float32 on the CPU) in a child process of the same <c>maeml bench</c> run, with the same threads, configuration and batch.</summary>
public sealed class OfficialPyTorch(string python, string script)
{
    const string ScriptPath = "tools/pytorch/bench_official.py";

    /// <summary>The script in the current folder or a parent (a clone of the repository), else beside the tool.</summary>
    /// <exception cref="CliException">Not found.</exception>
    public static string FindScript()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, ScriptPath))) return Path.Combine(dir.FullName, ScriptPath);
        throw new CliException($"--pytorch: {ScriptPath} was not found in the current folder or its parents (run from a clone of the MaeMl repository)");
    }

    /// <summary>Times the official step on <paramref name="c"/> and prints it beside MaeMl's rates (name, images/s) of the same run.</summary>
    public void Report(MaeConfig c, int batch, int steps, int warmup, params (string Name, double ImagesPerSecond)[] ours)
    {
        var args = new[]
        {
            script, "--img-size", $"{c.ImageSize}", "--patch-size", $"{c.PatchSize}", "--embed-dim", $"{c.EmbedDim}", "--depth", $"{c.Depth}",
            "--num-heads", $"{c.NumHeads}", "--decoder-embed-dim", $"{c.DecoderEmbedDim}", "--decoder-depth", $"{c.DecoderDepth}",
            "--decoder-num-heads", $"{c.DecoderNumHeads}", "--mlp-ratio", c.MlpRatio.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--batch-size", $"{batch}", "--steps", $"{steps}", "--warmup", $"{warmup}", "--threads", $"{torch.get_num_threads()}",
        };
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(start) ?? throw new CliException($"--pytorch: '{python}' did not start"); }
        catch (System.ComponentModel.Win32Exception e) { throw new CliException($"--pytorch: '{python}' cannot be run ({e.Message})"); }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            static string? LastLine(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
            var last = LastLine(stdout);
            if (process.ExitCode != 0 || last is null || !last.StartsWith('{'))
            {
                var why = LastLine(stderr.Result) ?? $"exit code {process.ExitCode}";
                Console.WriteLine($"  official PyTorch MAE: not measured ({python} {ScriptPath}: {why})");
                return;
            }
            using var json = System.Text.Json.JsonDocument.Parse(last);
            double ips = json.RootElement.GetProperty("images_per_s").GetDouble();
            var version = json.RootElement.GetProperty("torch").GetString();
            var threads = json.RootElement.GetProperty("threads").GetInt32();
            Console.WriteLine($"  official PyTorch MAE    float32   {ips,8:F2} img/s  {batch / ips,6:F3} s/step  (torch {version}, {threads} threads, measured now); " +
                              string.Join(", ", ours.Select(o => $"MaeMl {o.Name} {o.ImagesPerSecond / ips:F2}x")));
        }
    }
}
