using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Interop;
using MaeMl.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>What <see cref="OfficialTrainingCheckpoint.Export"/> does with a checkpoint written in the middle of an epoch: the official
/// loop resumes only at epoch boundaries (<c>start_epoch = checkpoint['epoch'] + 1</c>, lr from <c>epoch + it / len(loader)</c>).</summary>
public enum MidEpochPosition
{
    /// <summary>To the nearer boundary: <see cref="Down"/> in the first half of the epoch, <see cref="Up"/> in the second.</summary>
    Nearest,
    /// <summary>The official run repeats the whole epoch (the steps MaeMl already took in it are taken again, on other batches).</summary>
    Down,
    /// <summary>The official run starts at the next epoch (the rest of this epoch is skipped; the schedule jumps ahead).</summary>
    Up,
    /// <summary>Refuse: export only checkpoints written at an epoch's end.</summary>
    Refuse,
}

/// <summary>How <see cref="OfficialTrainingCheckpoint.Export"/> writes the official file.</summary>
public sealed record OfficialExportOptions
{
    /// <summary>What to do when the checkpoint lies inside an epoch (default: round to the nearer boundary, with a note).</summary>
    public MidEpochPosition MidEpoch { get; init; } = MidEpochPosition.Nearest;
}

/// <summary>What <see cref="OfficialTrainingCheckpoint.Export"/> wrote.</summary>
/// <param name="Path">The official checkpoint.</param>
/// <param name="OfficialEpoch">Its <c>epoch</c> entry: the last finished epoch.</param>
/// <param name="OptimizerSteps">AdamW steps taken so far (the moments' <c>step</c>).</param>
/// <param name="Run">The run's settings (from the checkpoint header; defaults where it has none).</param>
/// <param name="ModelName">The <c>models_mae</c> name written to <c>args.model</c>.</param>
/// <param name="Notes">What the reader should know: rounding, defaults, names.</param>
public sealed record OfficialExportResult(string Path, int OfficialEpoch, long OptimizerSteps, PretrainOptions Run, string ModelName, IReadOnlyList<string> Notes)
{
    /// <summary>The epoch the official <c>--resume</c> starts at.</summary>
    public int ResumesAtEpoch => OfficialEpoch + 1;

    /// <summary>The per-GPU batch and accumulation that keep the run's effective batch on <paramref name="gpus"/> GPUs: MaeMl's batch per
    /// GPU when it divides, else the fewest accumulation steps that do; <c>Exact</c> is false when no split gives the effective batch.</summary>
    public (int BatchSize, int AccumIter, bool Exact) Split(int gpus)
    {
        if (gpus < 1) throw new ArgumentException($"gpus must be at least 1, got {gpus}");
        int effective = Run.EffectiveBatchSize;
        if (effective % ((long)gpus * Run.BatchSize) == 0) return (Run.BatchSize, effective / (gpus * Run.BatchSize), true);
        for (int accum = Run.AccumIter; accum >= 1; accum--)
            if (effective % ((long)gpus * accum) == 0) return (effective / (gpus * accum), accum, true);
        return (Math.Max(1, (int)Math.Round((double)effective / gpus)), 1, false);
    }

    /// <summary>The <c>main_pretrain.py</c> arguments that continue this run on <paramref name="gpus"/> GPUs with the same effective batch and
    /// schedule (<see cref="Split"/>): <c>--lr</c> absolute, so the per-GPU split does not change it.</summary>
    public IReadOnlyList<string> MainPretrainArguments(int gpus)
    {
        var (perGpu, accum, _) = Split(gpus);
        var args = new List<string>
        {
            "--resume", Path, "--model", ModelName, "--input_size", Num(Run.Model.ImageSize), "--mask_ratio", Num(Run.Model.MaskRatio),
            "--epochs", Num(Run.Epochs), "--warmup_epochs", Num(Run.WarmupEpochs), "--lr", Num(Run.PeakLr), "--min_lr", Num(Run.MinLr),
            "--weight_decay", Num(Run.WeightDecay), "--batch_size", Num(perGpu), "--accum_iter", Num(accum), "--seed", Num(Run.Seed),
        };
        if (Run.Model.NormPixLoss) args.Insert(4, "--norm_pix_loss");
        if (!string.IsNullOrEmpty(Run.DataDir)) args.AddRange(["--data_path", Run.DataDir]);
        return args;
    }

    static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>How <see cref="OfficialTrainingCheckpoint.Import"/> reads the official file.</summary>
public sealed record OfficialImportOptions
{
    /// <summary>Attention heads and other settings tensor shapes do not tell (default: from <c>args.model</c> when it names a preset,
    /// else the paper architecture of the same width and depth).</summary>
    public MaeLoadOptions? Load { get; init; }
}

/// <summary>What <see cref="OfficialTrainingCheckpoint.Import"/> wrote.</summary>
/// <param name="Path">The MaeMl checkpoint.</param>
/// <param name="Config">The architecture read from the file.</param>
/// <param name="Epoch">The epoch <c>maeml pretrain --resume</c> starts at (the official <c>epoch</c> + 1).</param>
/// <param name="OptimizerSteps">AdamW steps taken so far.</param>
/// <param name="Run">The official run's settings (from <c>args</c>), to pass to <c>maeml pretrain --resume</c>; effective batch =
/// <c>batch_size x accum_iter x world_size</c>, lr absolute.</param>
/// <param name="Notes">What the reader should know: grouping found, scaler, defaults.</param>
public sealed record OfficialImportResult(string Path, MaeConfig Config, int Epoch, long OptimizerSteps, PretrainOptions Run, IReadOnlyList<string> Notes);

/// <summary>
/// The hand-off between MaeMl pretraining and the official facebookresearch/mae <c>main_pretrain.py</c> (torchrun / DDP on many GPUs),
/// lossless both ways: a <c>.maeml</c> pretraining checkpoint becomes the <c>checkpoint-N.pth</c> that <c>util/misc.save_model</c> writes
/// and <c>--resume</c> reads (weights, AdamW moments and step in PyTorch's layout and parameter-group order, epoch, GradScaler, args), and
/// such a file becomes a <c>.maeml</c> that <c>maeml pretrain --resume</c> continues (epoch, optimizer step, moments; the schedule from
/// the returned settings). The file format is <see cref="OfficialTrainingCheckpointFile"/>; this class maps it onto
/// <see cref="MaskedAutoencoderViT"/> and MaeMl's <see cref="AdamW"/> with <see cref="ParameterGroups.AdamWGroups"/>, whose
/// [no decay, decay] groups are timm 0.3.2's <c>add_weight_decay</c>, the official script's.
/// </summary>
public static class OfficialTrainingCheckpoint
{
    const string TimmGrouping = "timm add_weight_decay: [no weight decay (biases, 1-D), weight decay] (main_pretrain.py)";

    /// <summary>Writes the official training checkpoint of the MaeMl pretraining checkpoint <paramref name="maemlPath"/> to <paramref name="pthPath"/> (atomically).</summary>
    public static OfficialExportResult Export(string maemlPath, string pthPath, OfficialExportOptions? options = null)
    {
        options ??= new OfficialExportOptions();
        var header = MaeCheckpoint.ReadHeader(maemlPath);
        if (!header.HasOptimizer)
            throw new InvalidDataException($"'{maemlPath}' holds no optimizer state, so it cannot continue as a training run; 'maeml convert' writes its weights as a .pth");
        var notes = new List<string>();
        var t = header.Training;
        int epoch = IntOf(t, "epoch") ?? 0, stepInEpoch = IntOf(t, "step_in_epoch") ?? 0;
        int? stepsPerEpoch = IntOf(t, "steps_per_epoch");
        var run = RunOf(t, header.Config, maemlPath, notes);

        int official;   // the last finished epoch
        if (stepInEpoch == 0) official = epoch - 1;
        else
        {
            string where = $"'{maemlPath}' was written inside epoch {epoch} (step {stepInEpoch}{(stepsPerEpoch is int n ? $" of {n}" : "")})";
            var mode = options.MidEpoch;
            if (mode == MidEpochPosition.Refuse)
                throw new InvalidDataException($"{where}; the official loop resumes only at an epoch's start. Export the checkpoint of an epoch's end, or round (Nearest/Down/Up)");
            if (mode == MidEpochPosition.Nearest) mode = stepsPerEpoch is int m && 2 * stepInEpoch >= m ? MidEpochPosition.Up : MidEpochPosition.Down;
            official = mode == MidEpochPosition.Up ? epoch : epoch - 1;
            notes.Add(mode == MidEpochPosition.Up
                ? $"{where}: rounded up, the official run starts at epoch {epoch + 1} and skips the rest of epoch {epoch}"
                : $"{where}: rounded down, the official run repeats epoch {epoch} from its start (its first {stepInEpoch} steps are taken a second time)");
        }

        using var model = new MaskedAutoencoderViT(header.Config);
        using var optimizer = new AdamW(ParameterGroups.AdamWGroups(model, run.PeakLr, run.WeightDecay), run.PeakLr, 0.9, 0.95);
        MaeCheckpoint.LoadInto(maemlPath, model, optimizer);

        var nameOf = model.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
        var states = optimizer.state_dict().State;
        var groups = new List<(IReadOnlyList<string>, double, double, double, double, double)>();
        var stateByName = new Dictionary<string, AdamWParameterState>(StringComparer.Ordinal);
        int si = 0;
        foreach (var g in optimizer.ParamGroups.Cast<TorchSharp.Modules.AdamW.ParamGroup>())
        {
            var o = g.Options;
            var names = new List<string>();
            foreach (var p in g.Parameters)
            {
                var name = nameOf[p.Handle];
                names.Add(name);
                var st = (TorchSharp.Modules.AdamW.State)states[si++];
                if (st.step > 0) stateByName[name] = new AdamWParameterState(st.step, st.exp_avg, st.exp_avg_sq);
            }
            groups.Add((names, o.LearningRate!.Value, o.beta1!.Value, o.beta2!.Value, o.eps!.Value, o.weight_decay!.Value));
        }
        long steps = stateByName.Count == 0 ? 0 : stateByName.Values.Max(s => s.Step);
        if (stateByName.Values.Select(s => s.Step).Distinct().Count() > 1)
            notes.Add($"the parameters have taken different numbers of steps ({string.Join(", ", stateByName.Values.Select(s => s.Step).Distinct().Order())}); each keeps its own");
        if (LongOf(t, "optimizer_steps") is long recorded && recorded != steps && stateByName.Count > 0)
            notes.Add($"the header records {recorded} optimizer steps, the moments {steps}; the moments' count is what AdamW's bias correction uses");

        string modelName = PresetName(header.Config) ?? CustomName(header.Config);
        if (PresetName(header.Config) is null)
            notes.Add($"the architecture ({MaeCheckpoint.Describe(header.Config)}) is none of models_mae.py's; register it there as '{modelName}' " +
                      "(MaskedAutoencoderViT with these sizes, norm_layer=partial(nn.LayerNorm, eps=1e-6)) before resuming");

        var modelState = model.state_dict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value)).ToList();
        var args = OfficialArgs(run, modelName, official);
        // no using: the tensors belong to the model and the optimizer, disposed above
        var state = OfficialTrainingState.FromNames(modelState, groups, stateByName, official, OfficialTrainingCheckpointFile.FreshGradScaler, args);
        OfficialTrainingCheckpointFile.Write(pthPath, state);
        return new OfficialExportResult(pthPath, official, steps, run, modelName, notes);
    }

    /// <summary>Writes the MaeMl pretraining checkpoint of the official training checkpoint <paramref name="pthPath"/> to
    /// <paramref name="maemlPath"/> (atomically): <c>maeml pretrain --resume</c> continues it at the official <c>epoch</c> + 1.</summary>
    public static OfficialImportResult Import(string pthPath, string maemlPath, OfficialImportOptions? options = null)
    {
        options ??= new OfficialImportOptions();
        var notes = new List<string>();
        using var state = OfficialTrainingCheckpointFile.Read(pthPath);
        var shapeOf = state.Model.ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        var shapes = ConfigInference.ReadShapes(shapeOf, pthPath);
        if (shapes.NumClasses is not null)
            throw new InvalidDataException($"'{pthPath}' is a fine-tuning checkpoint (a head of {shapes.NumClasses} classes), not a pretraining one; 'maeml finetune' reads it");
        if (!shapes.HasDecoder) throw new InvalidDataException($"'{pthPath}' holds no MAE decoder: not a main_pretrain.py checkpoint");
        var load = options.Load ?? new MaeLoadOptions();
        if (load.Preset is null && load.NumHeads is null && load.Template is null && state.Arg("model") is string name)
        {
            if (MaePresets.All.ContainsKey(name)) load = load with { Preset = name };
            else if (CustomHeads(name) is var (heads, decoderHeads)) load = load with { NumHeads = heads, DecoderNumHeads = decoderHeads };
        }
        var config = ConfigInference.InferMae(shapes, pthPath, load, null, notes);
        ConfigInference.CheckAgainstTensors(config, shapes, shapeOf, pthPath);
        config = config with
        {
            MaskRatio = state.Arg("mask_ratio") is double r ? r : config.MaskRatio,
            NormPixLoss = state.Arg("norm_pix_loss") is bool npl ? npl : config.NormPixLoss,
        };

        using var model = new MaskedAutoencoderViT(config);
        var report = new StateDictLoadReport(pthPath);
        StateDictLoader.Load(model, state.Model.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal), report, strict: true);
        if (report.Interpolated.Count > 0) throw new InvalidDataException($"'{pthPath}': position tables would be resized ({string.Join(", ", report.Interpolated)}); a resumed run keeps its size");

        var (decay, noDecay) = ParameterGroups.SplitWeightDecay(model);
        var all = model.named_parameters().Select(p => p.name).ToList();
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        var candidates = new List<ParameterGrouping>
        {
            new(TimmGrouping, [noDecay.Select(x => x.Name).ToList(), decay.Select(x => x.Name).ToList()]),
            new("one group of model.parameters()", [all]),
            new("one group of the trainable parameters", [trainable]),
        };
        var (grouping, byName) = state.NameParameters(candidates, pthPath);
        AdamWParamGroup noDecayHyper, decayHyper;
        if (ReferenceEquals(grouping, candidates[0])) (noDecayHyper, decayHyper) = (state.ParamGroups[0], state.ParamGroups[1]);
        else
        {
            noDecayHyper = decayHyper = state.ParamGroups[0];
            notes.Add($"the optimizer has {grouping.Description}: every parameter with weight decay {decayHyper.WeightDecay}. MaeMl keeps its two groups " +
                      $"(timm's split) and gives both these settings, so the next steps are the file's");
        }

        var lr = decayHyper.Lr;
        using var optimizer = new AdamW(ParameterGroups.AdamWGroups(model, lr, decayHyper.WeightDecay, decayHyper.Beta1, decayHyper.Beta2), lr, decayHyper.Beta1, decayHyper.Beta2);
        var nameOf = model.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
        var states = optimizer.state_dict().State;
        int si = 0;
        using (no_grad())
        {
            foreach (var (g, hyper) in optimizer.ParamGroups.Cast<TorchSharp.Modules.AdamW.ParamGroup>().Zip(new[] { noDecayHyper, decayHyper }))
            {
                var o = g.Options;
                o.LearningRate = hyper.Lr; o.InitialLearningRate = hyper.Lr;
                o.beta1 = hyper.Beta1; o.beta2 = hyper.Beta2; o.eps = hyper.Eps; o.weight_decay = hyper.WeightDecay;
                foreach (var p in g.Parameters)
                {
                    var st = (TorchSharp.Modules.AdamW.State)states[si++];
                    if (!byName.TryGetValue(nameOf[p.Handle], out var s)) continue;
                    st.step = s.Step;
                    st.exp_avg.copy_(s.ExpAvg);
                    st.exp_avg_sq.copy_(s.ExpAvgSq);
                }
            }
        }
        long steps = byName.Count == 0 ? 0 : byName.Values.Max(s => s.Step);
        var missing = trainable.Where(n => !byName.ContainsKey(n)).ToList();
        if (byName.Count > 0 && missing.Count > 0) notes.Add($"{missing.Count} trainable parameter(s) have no optimizer state yet (fresh moments): {string.Join(", ", missing.Take(5))}");
        if (state.Scaler.FirstOrDefault(kv => kv.Key == "scale").Value is double scale)
            notes.Add($"the GradScaler state (scale {scale:G}) is not used: MaeMl trains in float32 or bfloat16, which need no loss scaling; a later export writes a fresh one");

        var run = RunOf(state, config, notes);
        int epoch = state.Epoch + 1;
        var training = new JsonObject
        {
            ["epoch"] = epoch, ["step_in_epoch"] = 0, ["optimizer_steps"] = steps, ["seed"] = run.Seed,
            ["rng"] = "data order, augmentation and masks derive from (seed, epoch, step)",
            ["options"] = JsonSerializer.SerializeToNode(run),
            ["handoff"] = new JsonObject
            {
                ["from"] = "official main_pretrain.py checkpoint", ["file"] = Path.GetFileName(pthPath), ["official_epoch"] = state.Epoch,
                ["world_size"] = LongArg(state, "world_size") ?? 1, ["grouping"] = grouping.Description,
            },
        };
        MaeCheckpoint.Save(maemlPath, model, training, optimizer);
        return new OfficialImportResult(maemlPath, config, epoch, steps, run, notes);
    }

    /// <summary>The preset whose architecture <paramref name="c"/> is (loss settings aside), or null.</summary>
    static string? PresetName(MaeConfig c) => MaePresets.All.FirstOrDefault(kv =>
        kv.Value() with { MaskRatio = c.MaskRatio, NormPixLoss = c.NormPixLoss, DropPath = c.DropPath } == c).Key;

    /// <summary>The heads of a <see cref="CustomName"/> (what <see cref="Export"/> writes to <c>args.model</c> for an architecture
    /// models_mae.py does not name), or null.</summary>
    static (int Heads, int DecoderHeads)? CustomHeads(string name) =>
        System.Text.RegularExpressions.Regex.Match(name, @"^mae_vit_e\d+d\d+h(\d+)_patch\d+_dec\d+d\d+h(\d+)$") is { Success: true } m
            ? (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)) : null;

    static string CustomName(MaeConfig c) => $"mae_vit_e{c.EmbedDim}d{c.Depth}h{c.NumHeads}_patch{c.PatchSize}_dec{c.DecoderEmbedDim}d{c.DecoderDepth}h{c.DecoderNumHeads}";

    /// <summary>The run's settings from the header's <c>options</c> (what <see cref="Pretrainer"/> records), else the defaults.</summary>
    static PretrainOptions RunOf(JsonObject training, MaeConfig config, string path, List<string> notes)
    {
        PretrainOptions? run = null;
        try { run = training["options"]?.Deserialize<PretrainOptions>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException) { }
        if (run is null)
        {
            notes.Add($"'{path}' records no run settings; args gets MaeMl's defaults (epochs, warmup, lr, batch): pass the real ones to main_pretrain.py");
            run = new PretrainOptions { DataDir = "", OutputDir = "" };
        }
        return run with { Model = config };
    }

    /// <summary>The official run's settings from its <c>args</c>: effective batch <c>batch_size x accum_iter x world_size</c> (one MaeMl step
    /// covers what the N GPUs did together), lr absolute (<c>args.lr</c>, which main_pretrain.py sets from blr), the rest by name.</summary>
    static PretrainOptions RunOf(OfficialTrainingState state, MaeConfig config, List<string> notes)
    {
        var d = new PretrainOptions { DataDir = "", OutputDir = "" };
        if (state.Args.Count == 0) notes.Add("the file has no args: the run settings are MaeMl's defaults; pass the real ones to maeml pretrain");
        long worldSize = LongArg(state, "world_size") ?? 1;
        return d with
        {
            DataDir = state.Arg("data_path") as string ?? "",
            OutputDir = state.Arg("output_dir") as string ?? "",
            Model = config,
            Epochs = (int)(LongArg(state, "epochs") ?? d.Epochs),
            WarmupEpochs = DoubleArg(state, "warmup_epochs") ?? d.WarmupEpochs,
            BatchSize = (int)((LongArg(state, "batch_size") ?? d.BatchSize) * Math.Max(1, worldSize)),
            AccumIter = (int)(LongArg(state, "accum_iter") ?? d.AccumIter),
            BaseLr = DoubleArg(state, "blr") ?? d.BaseLr,
            Lr = DoubleArg(state, "lr"),
            MinLr = DoubleArg(state, "min_lr") ?? d.MinLr,
            WeightDecay = DoubleArg(state, "weight_decay") ?? d.WeightDecay,
            Seed = (int)(LongArg(state, "seed") ?? d.Seed),
        };
    }

    /// <summary><c>main_pretrain.py</c>'s <c>argparse.Namespace</c> (all of <c>get_args_parser</c>, plus <c>distributed</c>) for this run.</summary>
    static List<KeyValuePair<string, object?>> OfficialArgs(PretrainOptions run, string modelName, int officialEpoch)
    {
        object warmup = run.WarmupEpochs == Math.Floor(run.WarmupEpochs) ? (object)(long)run.WarmupEpochs : run.WarmupEpochs;
        return
        [
            new("batch_size", (long)run.BatchSize), new("epochs", (long)run.Epochs), new("accum_iter", (long)run.AccumIter),
            new("model", modelName), new("input_size", (long)run.Model.ImageSize), new("mask_ratio", run.Model.MaskRatio),
            new("norm_pix_loss", run.Model.NormPixLoss), new("weight_decay", run.WeightDecay), new("lr", run.PeakLr), new("blr", run.BaseLr),
            new("min_lr", run.MinLr), new("warmup_epochs", warmup), new("data_path", run.DataDir), new("output_dir", run.OutputDir),
            new("log_dir", run.OutputDir), new("device", "cuda"), new("seed", (long)run.Seed), new("resume", ""),
            new("start_epoch", (long)(officialEpoch + 1)), new("num_workers", 10L), new("pin_mem", true), new("world_size", 1L),
            new("local_rank", -1L), new("dist_on_itp", false), new("dist_url", "env://"), new("distributed", false),
        ];
    }

    static int? IntOf(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<int>(out var i) ? i : null;
    static long? LongOf(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<long>(out var i) ? i : null;
    static long? LongArg(OfficialTrainingState s, string name) => s.Arg(name) is long l ? l : null;
    static double? DoubleArg(OfficialTrainingState s, string name) => s.Arg(name) switch { double d => d, long l => l, _ => null };
}
