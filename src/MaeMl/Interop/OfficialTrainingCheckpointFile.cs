using System.Collections;
using MaeMl.Files;
using static TorchSharp.torch;

namespace MaeMl.Interop;

/// <summary>The state <c>torch.optim.AdamW</c> keeps for one parameter (<c>state[i]</c> of its <c>state_dict()</c>).</summary>
/// <param name="Step">Steps this parameter has taken (a float32 scalar tensor in PyTorch 1.13+, an integer here).</param>
/// <param name="ExpAvg">First moment, the parameter's shape.</param>
/// <param name="ExpAvgSq">Second moment, the parameter's shape.</param>
internal sealed record AdamWParameterState(long Step, Tensor ExpAvg, Tensor ExpAvgSq);

/// <summary>One entry of <c>torch.optim.AdamW.state_dict()['param_groups']</c>.</summary>
/// <param name="Params">The group's parameter indices, as PyTorch numbers them: across groups, in group order.</param>
/// <param name="Lr">The lr last set (the official loop sets it before every step, so it is overwritten on resume).</param>
/// <param name="Beta1">First-moment decay.</param>
/// <param name="Beta2">Second-moment decay.</param>
/// <param name="Eps">Denominator term.</param>
/// <param name="WeightDecay">Decoupled weight decay of the group.</param>
internal sealed record AdamWParamGroup(IReadOnlyList<long> Params, double Lr, double Beta1, double Beta2, double Eps, double WeightDecay);

/// <summary>How a training script may have grouped a model's parameters for its optimizer: each group's parameter names, in order.
/// PyTorch stores indices, not names; a grouping gives them back their names (see <see cref="OfficialTrainingState.NameParameters"/>).</summary>
/// <param name="Description">In words, for messages (e.g. "timm add_weight_decay: [no decay, decay]").</param>
/// <param name="Groups">Parameter names per group, in the order the optimizer received them.</param>
internal sealed record ParameterGrouping(string Description, IReadOnlyList<IReadOnlyList<string>> Groups);

/// <summary>
/// What facebookresearch/mae's <c>util/misc.save_model</c> writes and <c>util/misc.load_model</c> (<c>--resume</c>) reads:
/// <c>{'model': model_without_ddp.state_dict(), 'optimizer': optimizer.state_dict(), 'epoch': epoch, 'scaler': loss_scaler.state_dict(),
/// 'args': args}</c>, with the optimizer in PyTorch's own layout (indices, not names). Holds tensors: dispose it.
/// </summary>
internal sealed class OfficialTrainingState : IDisposable
{
    /// <summary>The model's state dict (official names), in file order.</summary>
    public required IReadOnlyList<KeyValuePair<string, Tensor>> Model { get; init; }
    /// <summary>The optimizer's param groups, in order.</summary>
    public required IReadOnlyList<AdamWParamGroup> ParamGroups { get; init; }
    /// <summary>The optimizer's per-parameter state by index; a parameter that never stepped has none (as in PyTorch).</summary>
    public required IReadOnlyDictionary<long, AdamWParameterState> Optimizer { get; init; }
    /// <summary>The last finished epoch (0-based): <c>--resume</c> continues at <c>Epoch + 1</c>; -1 when none finished.</summary>
    public required int Epoch { get; init; }
    /// <summary><c>GradScaler.state_dict()</c> (scale, growth factor, ...).</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Scaler { get; init; } = OfficialTrainingCheckpointFile.FreshGradScaler;
    /// <summary>The attributes of the run's <c>argparse.Namespace</c>: str, long, double, bool, null or lists of them.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Args { get; init; } = [];

    /// <summary>The attribute <paramref name="name"/> of <see cref="Args"/>, or null.</summary>
    public object? Arg(string name) => Args.FirstOrDefault(kv => kv.Key == name).Value;

    /// <summary>Builds the state from names: the groups' parameters get PyTorch's indices (0.. across groups, in order); a parameter
    /// missing from <paramref name="stateByName"/> gets no state entry (it never stepped).</summary>
    public static OfficialTrainingState FromNames(IReadOnlyList<KeyValuePair<string, Tensor>> model,
        IReadOnlyList<(IReadOnlyList<string> Names, double Lr, double Beta1, double Beta2, double Eps, double WeightDecay)> groups,
        IReadOnlyDictionary<string, AdamWParameterState> stateByName, int epoch,
        IReadOnlyList<KeyValuePair<string, object?>>? scaler = null, IReadOnlyList<KeyValuePair<string, object?>>? args = null)
    {
        var modelNames = model.Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        var paramGroups = new List<AdamWParamGroup>();
        var state = new Dictionary<long, AdamWParameterState>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long index = 0;
        foreach (var g in groups)
        {
            var ids = new List<long>();
            foreach (var name in g.Names)
            {
                if (!modelNames.Contains(name)) throw new ArgumentException($"optimizer parameter '{name}' is not in the model's state dict");
                if (!seen.Add(name)) throw new ArgumentException($"parameter '{name}' is in two optimizer groups");
                if (stateByName.TryGetValue(name, out var s)) state[index] = s;
                ids.Add(index++);
            }
            paramGroups.Add(new AdamWParamGroup(ids, g.Lr, g.Beta1, g.Beta2, g.Eps, g.WeightDecay));
        }
        var stray = stateByName.Keys.Where(k => !seen.Contains(k)).ToList();
        if (stray.Count > 0) throw new ArgumentException($"optimizer state for parameters in no group: {string.Join(", ", stray.Take(5))}");
        return new OfficialTrainingState
        {
            Model = model, ParamGroups = paramGroups, Optimizer = state, Epoch = epoch,
            Scaler = scaler ?? OfficialTrainingCheckpointFile.FreshGradScaler, Args = args ?? [],
        };
    }

    /// <summary>
    /// Names the optimizer's parameters as <c>torch.optim.Optimizer.load_state_dict</c> pairs them: the i-th index of group g belongs
    /// to the i-th parameter of group g of the optimizer being loaded. The first of <paramref name="candidates"/> whose group count and
    /// sizes match the file's is taken; every state entry is then checked against the shape of the model tensor it names, so a
    /// grouping that fits by count but not by content is refused rather than loaded into the wrong parameters.
    /// </summary>
    /// <returns>The grouping used and the state by parameter name.</returns>
    public (ParameterGrouping Grouping, IReadOnlyDictionary<string, AdamWParameterState> State) NameParameters(IReadOnlyList<ParameterGrouping> candidates, string file)
    {
        var sizes = ParamGroups.Select(g => g.Params.Count).ToList();
        var grouping = candidates.FirstOrDefault(c => c.Groups.Select(g => g.Count).SequenceEqual(sizes))
            ?? throw new InvalidDataException($"'{file}': its optimizer has {sizes.Count} parameter group(s) of [{string.Join(", ", sizes)}] parameters, " +
                $"which is none of the groupings MaeMl knows for this model: {string.Join("; ", candidates.Select(c => $"{c.Description} [{string.Join(", ", c.Groups.Select(g => g.Count))}]"))}");
        var nameOf = new Dictionary<long, string>();
        for (int g = 0; g < ParamGroups.Count; g++)
            for (int i = 0; i < ParamGroups[g].Params.Count; i++)
                if (!nameOf.TryAdd(ParamGroups[g].Params[i], grouping.Groups[g][i]))
                    throw new InvalidDataException($"'{file}': optimizer parameter index {ParamGroups[g].Params[i]} appears in two places of its param_groups");
        var shapes = Model.ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        var byName = new Dictionary<string, AdamWParameterState>(StringComparer.Ordinal);
        foreach (var (id, s) in Optimizer.OrderBy(kv => kv.Key))
        {
            if (!nameOf.TryGetValue(id, out var name))
                throw new InvalidDataException($"'{file}': the optimizer holds state for parameter index {id}, which is in none of its param_groups");
            if (!shapes.TryGetValue(name, out var shape))
                throw new InvalidDataException($"'{file}': optimizer parameter {id} would be '{name}' ({grouping.Description}), which the model does not hold");
            if (!s.ExpAvg.shape.SequenceEqual(shape) || !s.ExpAvgSq.shape.SequenceEqual(shape))
                throw new InvalidDataException($"'{file}': the optimizer state of parameter {id} has shape [{string.Join(", ", s.ExpAvg.shape)}] but, grouped as " +
                    $"{grouping.Description}, it would be '{name}' of shape [{string.Join(", ", shape)}]: the file's parameter order is not this model's");
            byName[name] = s;
        }
        return (grouping, byName);
    }

    /// <summary>Disposes every tensor (model and optimizer state).</summary>
    public void Dispose()
    {
        foreach (var (_, t) in Model) t.Dispose();
        foreach (var s in Optimizer.Values) { s.ExpAvg.Dispose(); s.ExpAvgSq.Dispose(); }
    }
}

/// <summary>
/// Reads and writes official MAE training checkpoints (<see cref="OfficialTrainingState"/>) as <c>torch.save</c> files, in the layout
/// torch 1.13 writes for <c>main_pretrain.py</c>: the model an <c>OrderedDict</c>; the optimizer
/// <c>{'state': {i: {'step': tensor(float), 'exp_avg', 'exp_avg_sq'}}, 'param_groups': [{'lr', 'betas', 'eps', 'weight_decay',
/// 'amsgrad', 'foreach', 'maximize', 'capturable', 'params'}]}</c>; <c>epoch</c> an int; <c>scaler</c> the GradScaler dict;
/// <c>args</c> an <c>argparse.Namespace</c>. Reading goes through <see cref="PyTorchCheckpointFile"/>'s checks (zip layout,
/// <see cref="SafePickleValidator"/>, CRC-32s); what is written passes them.
/// </summary>
internal static class OfficialTrainingCheckpointFile
{
    /// <summary>The top-level entries of a training checkpoint, in the order <c>util/misc.save_model</c> writes them.</summary>
    public static readonly IReadOnlyList<string> Entries = ["model", "optimizer", "epoch", "scaler", "args"];

    /// <summary>A fresh <c>torch.cuda.amp.GradScaler().state_dict()</c>: what a run that never scaled a loss hands over.</summary>
    public static readonly IReadOnlyList<KeyValuePair<string, object?>> FreshGradScaler =
    [
        new("scale", 65536.0), new("growth_factor", 2.0), new("backoff_factor", 0.5), new("growth_interval", 2000L), new("_growth_tracker", 0L),
    ];

    /// <summary>Writes <paramref name="state"/> atomically as a <c>torch.save</c> file that <c>util/misc.load_model</c> resumes from.</summary>
    public static void Write(string path, OfficialTrainingState state)
    {
        var model = new PyDict(ordered: true);
        foreach (var (name, t) in state.Model) model.Add(name, t);
        var packed = new PyDict();
        using var scope = NewDisposeScope();
        foreach (var (id, s) in state.Optimizer.OrderBy(kv => kv.Key))
            packed.Add(id, new PyDict { { "step", tensor((float)s.Step) }, { "exp_avg", s.ExpAvg }, { "exp_avg_sq", s.ExpAvgSq } });
        var groups = new List<object?>();
        foreach (var g in state.ParamGroups)
            groups.Add(new PyDict
            {
                { "lr", g.Lr }, { "betas", new PyTuple(g.Beta1, g.Beta2) }, { "eps", g.Eps }, { "weight_decay", g.WeightDecay },
                { "amsgrad", false }, { "foreach", null }, { "maximize", false }, { "capturable", false },
                { "params", g.Params.Select(i => (object?)i).ToList() },
            });
        var top = new PyDict
        {
            { "model", model },
            { "optimizer", new PyDict { { "state", packed }, { "param_groups", groups } } },
            { "epoch", (long)state.Epoch },
            { "scaler", ToDict(state.Scaler) },
            { "args", new PyNamespace(state.Args) },
        };
        AtomicFile.Write(path, stream => TorchPickleWriter.Write(stream, top));
    }

    static PyDict ToDict(IEnumerable<KeyValuePair<string, object?>> items)
    {
        var d = new PyDict();
        foreach (var (k, v) in items) d.Add(k, v);
        return d;
    }

    /// <summary>
    /// Reads a training checkpoint: all of <see cref="Entries"/> but <c>scaler</c> and <c>args</c> are required; the optimizer must be
    /// an Adam/AdamW state (<c>step</c>, <c>exp_avg</c>, <c>exp_avg_sq</c>; no amsgrad, no maximize). Everything else is refused with a
    /// message naming the file. The parameter names of the optimizer come from <see cref="OfficialTrainingState.NameParameters"/>.
    /// </summary>
    public static OfficialTrainingState Read(string path)
    {
        var top = PyTorchCheckpointFile.ReadTopLevel(path);
        try { return Parse(top, path); }
        catch { PyTorchCheckpointFile.DisposeTensors(top); throw; }
    }

    static OfficialTrainingState Parse(Hashtable top, string path)
    {
        var keys = top.Keys.Cast<object>().Select(k => k.ToString()).ToList();
        InvalidDataException Bad(string why) => new($"'{path}' is not an official MAE training checkpoint: {why}");
        foreach (var required in new[] { "model", "optimizer", "epoch" })
            if (!top.ContainsKey(required))
                throw Bad($"it has no '{required}' entry (entries: {string.Join(", ", keys)}); util/misc.save_model writes {string.Join(", ", Entries)}" +
                          (required == "optimizer" ? ". A weights-only file (e.g. mae_pretrain_vit_*.pth) is read by MaeModelFile / 'maeml convert'" : ""));

        if (top["model"] is not IDictionary modelDict) throw Bad("its 'model' entry is not a state dict");
        var model = new List<KeyValuePair<string, Tensor>>();
        foreach (DictionaryEntry e in modelDict)
        {
            if (e.Value is not Tensor t) throw Bad($"model entry '{e.Key}' is not a tensor");
            model.Add(new(e.Key.ToString()!, t));
        }
        if (model.Count > 0 && model.All(kv => kv.Key.StartsWith("module.", StringComparison.Ordinal)))
            model = model.Select(kv => new KeyValuePair<string, Tensor>(kv.Key["module.".Length..], kv.Value)).ToList();

        if (top["optimizer"] is not IDictionary optimizer || optimizer["param_groups"] is not IList rawGroups || optimizer["state"] is not IDictionary rawState)
            throw Bad("its 'optimizer' entry is not an optimizer state_dict ({'state': ..., 'param_groups': [...]})");
        var groups = new List<AdamWParamGroup>();
        foreach (var (raw, gi) in rawGroups.Cast<object?>().Select((g, i) => (g, i)))
        {
            if (raw is not IDictionary g) throw Bad($"param group {gi} is not a dict");
            string where = $"param group {gi}";
            if (g["amsgrad"] is true) throw Bad($"{where} uses amsgrad, which MaeMl's AdamW does not");
            if (g["maximize"] is true) throw Bad($"{where} maximizes, which MaeMl's AdamW does not");
            if (g["betas"] is not IList betas || betas.Count != 2) throw Bad($"{where} has no (beta1, beta2): not an Adam/AdamW state");
            if (g["params"] is not IList ids) throw Bad($"{where} has no parameter list");
            groups.Add(new AdamWParamGroup(ids.Cast<object?>().Select(x => Long(x, $"{where}: parameter index", Bad)).ToList(),
                Number(g["lr"], $"{where}: lr", Bad), Number(betas[0], $"{where}: beta1", Bad), Number(betas[1], $"{where}: beta2", Bad),
                Number(g["eps"], $"{where}: eps", Bad), Number(g["weight_decay"], $"{where}: weight_decay", Bad)));
        }
        var state = new Dictionary<long, AdamWParameterState>();
        foreach (DictionaryEntry e in rawState)
        {
            long id = Long(e.Key, "optimizer state key", Bad);
            if (e.Value is not IDictionary s) throw Bad($"the optimizer state of parameter {id} is not a dict");
            var extra = s.Keys.Cast<object>().Select(k => k.ToString()!).Except(["step", "exp_avg", "exp_avg_sq"]).ToList();
            if (extra.Count > 0) throw Bad($"the optimizer state of parameter {id} holds {string.Join(", ", extra)}: not a plain Adam/AdamW state (amsgrad or another optimizer)");
            if (s["exp_avg"] is not Tensor m || s["exp_avg_sq"] is not Tensor v) throw Bad($"the optimizer state of parameter {id} lacks exp_avg / exp_avg_sq");
            double step = s["step"] is Tensor st ? ScalarOf(st, id, Bad) : Number(s["step"], $"step of parameter {id}", Bad);
            if (!(step >= 0) || step != Math.Floor(step) || step > 1e15) throw Bad($"parameter {id} has step {step}, not a count of steps");
            if (s["step"] is Tensor owned) owned.Dispose();
            state[id] = new AdamWParameterState((long)step, m, v);
        }
        int epoch = checked((int)Long(top["epoch"], "epoch", Bad));
        var scaler = top["scaler"] is IDictionary sc ? Attributes(sc) : new List<KeyValuePair<string, object?>>();
        var args = top["args"] is IDictionary a ? Attributes(a) : new List<KeyValuePair<string, object?>>();
        return new OfficialTrainingState { Model = model, ParamGroups = groups, Optimizer = state, Epoch = epoch, Scaler = scaler, Args = args };
    }

    static double ScalarOf(Tensor t, long id, Func<string, InvalidDataException> bad)
    {
        if (t.numel() != 1) throw bad($"the step of parameter {id} is a tensor of {t.numel()} values");
        using var d = t.to_type(ScalarType.Float64);
        return d.item<double>();
    }

    static long Long(object? v, string what, Func<string, InvalidDataException> bad) => v switch
    {
        int i => i, long l => l, short s => s, byte b => b, sbyte sb => sb, uint u => u,
        System.Numerics.BigInteger big when big >= long.MinValue && big <= long.MaxValue => (long)big,
        _ => throw bad($"{what} is {Describe(v)}, not an integer"),
    };

    static double Number(object? v, string what, Func<string, InvalidDataException> bad) => v switch
    {
        double d => d, float f => f, int i => i, long l => l,
        _ => throw bad($"{what} is {Describe(v)}, not a number"),
    };

    static string Describe(object? v) => v is null ? "None" : $"a {v.GetType().Name}";

    /// <summary>The items of a dict or Namespace with plain values: integers as long, floats as double, lists as lists; anything else as its text.</summary>
    static List<KeyValuePair<string, object?>> Attributes(IDictionary d)
    {
        var items = new List<KeyValuePair<string, object?>>();
        foreach (DictionaryEntry e in d)
        {
            var key = e.Key.ToString()!;
            if (key == "__class__") continue;   // Razorvine's ClassDict records the class name
            items.Add(new(key, Plain(e.Value)));
        }
        return items.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
    }

    static object? Plain(object? v) => v switch
    {
        null or string or bool or double => v,
        float f => (double)f,
        int or long or short or byte or uint => Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture),
        Tensor t => DisposeAndDescribe(t),
        IDictionary => v.ToString(),
        IEnumerable items => items.Cast<object?>().Select(Plain).ToList(),
        _ => v.ToString(),
    };

    static string DisposeAndDescribe(Tensor t)
    {
        var text = $"tensor [{string.Join(", ", t.shape)}]";
        t.Dispose();
        return text;
    }
}
