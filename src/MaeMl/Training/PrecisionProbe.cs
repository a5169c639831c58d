using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// Resolves <see cref="TrainingPrecision.Auto"/> by measurement: a CPU feature flag does not mean speed (AVX512-BF16 without
/// AMX computes bfloat16 GEMMs at about half the float32 rate). Times a few MAE training steps (forward, backward, AdamW) of
/// the run's own architecture in float32 and in bfloat16 and picks the faster; bfloat16 is only tried where the CPU has
/// AVX512-BF16 or AMX. The choice is cached per CPU model, thread count and architecture in
/// <c>$XDG_CACHE_HOME/maeml/precision.json</c> (or <c>~/.cache</c>), so later runs decide without measuring.
/// </summary>
public static class PrecisionProbe
{
    /// <summary>Part of the cache key: raised whenever MaeMl changes how a precision computes a step (2: bfloat16 attention unfused
    /// on the CPU, one-pass AdamW), so choices measured with older kernels are measured again.</summary>
    const int KernelRevision = 2;

    /// <summary>Images per second of full MAE training steps (forward, backward, <see cref="AdamW"/>) on random images, on
    /// <paramref name="device"/> (null: the CPU).</summary>
    public static double StepImagesPerSecond(MaeConfig config, int batch, bool fullSequence, TrainingPrecision precision, int warmup, int steps, Device? device = null) =>
        MeasureSteps(config, batch, fullSequence, precision, warmup, steps, device).ImagesPerSecond;

    /// <summary>What <see cref="MeasureSteps"/> measured: images per second of whole steps, the optimizer step's share of their time,
    /// (bfloat16) the share of the mixed-precision copies (master weights into the working copy, its gradients into the master's), and
    /// the seconds of each timed step in the order they ran.</summary>
    public sealed record StepTiming(double ImagesPerSecond, double OptimizerShare, double CopyShare = 0, IReadOnlyList<double>? StepSeconds = null);

    /// <summary>The median over step pairs of <paramref name="slower"/>'s step time over <paramref name="faster"/>'s, pair i being the
    /// i-th timed step of each (of <see cref="MeasureInterleaved"/>, which ran them next to each other): each ratio sees the machine of
    /// one moment, and the median drops pairs that a burst of other load hit. Null when either has no step times.</summary>
    public static double? MedianPairedRatio(StepTiming slower, StepTiming faster)
    {
        if (slower.StepSeconds is not { Count: > 0 } s || faster.StepSeconds is not { Count: > 0 } f) return null;
        var r = s.Zip(f, (a, b) => a / b).Order().ToArray();
        return r.Length % 2 == 1 ? r[r.Length / 2] : (r[r.Length / 2 - 1] + r[r.Length / 2]) / 2;
    }

    /// <summary>As <see cref="StepImagesPerSecond"/>, also timing the <see cref="AdamW"/> step on its own.</summary>
    public static StepTiming MeasureSteps(MaeConfig config, int batch, bool fullSequence, TrainingPrecision precision, int warmup, int steps, Device? device = null) =>
        Measure(config, batch, precision, warmup, steps, device, [fullSequence])[fullSequence ? 1 : 0]!;

    /// <summary>The MAE step and the full-sequence baseline's step timed in alternation on one model (MAE, full, MAE, full, ...:
    /// <paramref name="warmup"/> and then <paramref name="steps"/> of each), so that both see the same machine: on a shared machine
    /// whose speed drifts between two separate measurements, the ratio of alternated ones is what stays comparable.</summary>
    public static (StepTiming Mae, StepTiming FullSequence) MeasureInterleaved(MaeConfig config, int batch, TrainingPrecision precision, int warmup, int steps, Device? device = null)
    {
        var t = Measure(config, batch, precision, warmup, steps, device, [false, true]);
        return (t[0]!, t[1]!);
    }

    /// <summary>Steps of one model, the design of step i being <c>designs[i % designs.Length]</c> (true: full sequence); per design,
    /// after its first <paramref name="warmup"/> steps, the time of <paramref name="steps"/> steps, its optimizer and copies.</summary>
    static StepTiming?[] Measure(MaeConfig config, int batch, TrainingPrecision precision, int warmup, int steps, Device? device, bool[] designs)
    {
        if (precision == TrainingPrecision.Auto) throw new ArgumentException("Measure Float32 or BFloat16, not Auto");
        device ??= CPU;
        torch.manual_seed(0);
        using var model = new MaskedAutoencoderViT(config);
        model.to(device);   // before the optimizer takes the parameters, as in training
        using var optimizer = new AdamW(ParameterGroups.AdamWGroups(model, 1e-4, 0.05), 1e-4, 0.9, 0.95);
        using var mixed = precision == TrainingPrecision.BFloat16 ? new BFloat16MasterWeights<MaskedAutoencoderViT>(model, () => new MaskedAutoencoderViT(model.Config)) : null;
        mixed?.FuseInto(optimizer);   // as training runs it
        var compute = mixed?.Work ?? model;
        using var imgs = randn(batch, config.InChans, config.ImageSize, config.ImageSize, device: device);
        var (step, opt, copies) = (new Stopwatch[2], new Stopwatch[2], new Stopwatch[2]);
        var each = new[] { new List<double>(), new List<double>() };
        for (int d = 0; d < 2; d++) (step[d], opt[d], copies[d]) = (new Stopwatch(), new Stopwatch(), new Stopwatch());
        for (int i = 0; i < (warmup + steps) * designs.Length; i++)
        {
            bool full = designs[i % designs.Length];
            int d = full ? 1 : 0;
            bool timed = i / designs.Length >= warmup;
            Synchronize(device);
            var before = step[d].Elapsed;
            if (timed) step[d].Start();
            using var scope = NewDisposeScope();
            if (timed) copies[d].Start();
            mixed?.PullWeights();
            Synchronize(device);
            copies[d].Stop();
            var noise = rand(batch, config.NumPatches, device: device);
            var output = full ? compute.ForwardFullSequenceBaseline(imgs, noise) : compute.Forward(imgs, noise);
            output.Loss.backward();
            Synchronize(device);
            if (timed) copies[d].Start();
            mixed?.PushGradients();
            Synchronize(device);
            copies[d].Stop();
            if (timed) opt[d].Start();
            optimizer.step();
            Synchronize(device);
            opt[d].Stop();
            optimizer.zero_grad();
            step[d].Stop();
            if (timed) each[d].Add((step[d].Elapsed - before).TotalSeconds);
        }
        var result = new StepTiming?[2];
        foreach (int d in designs.Select(f => f ? 1 : 0).Distinct())
        {
            double seconds = step[d].Elapsed.TotalSeconds;
            result[d] = new StepTiming(batch * steps / seconds, opt[d].Elapsed.TotalSeconds / seconds, copies[d].Elapsed.TotalSeconds / seconds, each[d]);
        }
        return result;
    }

    /// <summary>The faster of float32 and bfloat16 for MAE pretraining of <paramref name="config"/> here (see the class summary); with
    /// <paramref name="fullSequence"/>, for the step that runs every token through the encoder (what fine-tuning costs). Measured on
    /// the run's <paramref name="device"/> (null: the CPU); on a GPU both precisions are measured whatever the CPU has.</summary>
    public static TrainingPrecision Choose(MaeConfig config, int batchSize, Action<string>? log = null, bool fullSequence = false, Device? device = null)
    {
        device ??= CPU;
        bool onCpu = device.type == DeviceType.CPU;
        if (onCpu && !CpuFeatures.HasNativeBFloat16) return TrainingPrecision.Float32;
        int batch = Math.Clamp(batchSize, 1, 16);
        var where = onCpu ? $"{CpuModel()}|threads {torch.get_num_threads()}" : $"{device.type.ToString().ToLowerInvariant()}:{device.index}|cpu {CpuModel()}";
        var key = $"{where}|kernels {KernelRevision}|{config.ImageSize}/{config.PatchSize} {config.EmbedDim}x{config.Depth} dec {config.DecoderEmbedDim}x{config.DecoderDepth} mlp {config.MlpRatio} mask {config.MaskRatio}|batch {batch}" + (fullSequence ? "|full sequence" : "");
        var cache = ReadCache();
        if (cache[key] is JsonObject hit && Enum.TryParse<TrainingPrecision>(hit["choice"]?.GetValue<string>(), out var cached))
        {
            log?.Invoke($"precision Auto: {cached} (measured earlier on this machine: float32 {hit["float32_img_s"]} img/s, bfloat16 {hit["bfloat16_img_s"]} img/s)");
            return cached;
        }
        double fp32 = StepImagesPerSecond(config, batch, fullSequence, TrainingPrecision.Float32, warmup: 1, steps: 2, device);
        double bf16 = StepImagesPerSecond(config, batch, fullSequence, TrainingPrecision.BFloat16, warmup: 1, steps: 2, device);
        var choice = Faster(fp32, bf16);
        log?.Invoke($"precision Auto: {choice} (measured now, batch {batch}: float32 {fp32:F1} img/s, bfloat16 {bf16:F1} img/s)");
        cache[key] = new JsonObject { ["choice"] = choice.ToString(), ["float32_img_s"] = Math.Round(fp32, 1), ["bfloat16_img_s"] = Math.Round(bf16, 1), ["measured"] = DateTime.UtcNow.ToString("u") };
        WriteCache(cache);
        return choice;
    }

    /// <summary>Auto's rule on two measured rates (images/s): bfloat16 only when more than 5% faster than float32.</summary>
    public static TrainingPrecision Faster(double float32ImagesPerSecond, double bfloat16ImagesPerSecond) =>
        bfloat16ImagesPerSecond > 1.05 * float32ImagesPerSecond ? TrainingPrecision.BFloat16 : TrainingPrecision.Float32;

    /// <summary>Resolves <see cref="TrainingPrecision.Auto"/> (measuring if needed); other values are returned as they are.</summary>
    public static TrainingPrecision Resolve(TrainingPrecision precision, MaeConfig config, int batchSize, Action<string>? log = null, bool fullSequence = false,
                                            Device? device = null) =>
        precision == TrainingPrecision.Auto ? Choose(config, batchSize, log, fullSequence, device) : precision;

    /// <summary>Waits for the device's queued work (a GPU runs asynchronously; the CPU has nothing to wait for).</summary>
    static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }

    static string CachePath()
    {
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(root)) root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "maeml", "precision.json");
    }

    static JsonObject ReadCache()
    {
        try { return JsonNode.Parse(File.ReadAllText(CachePath())) as JsonObject ?? new JsonObject(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException) { return new JsonObject(); }
    }

    static void WriteCache(JsonObject cache)
    {
        try
        {
            var path = CachePath();
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var tmp = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, cache.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // a cache only: measure again next time
    }

    static string CpuModel()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException) { }
        return $"{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} CPU";
    }
}
