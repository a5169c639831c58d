using MaeMl.Model;
using static TorchSharp.torch;

namespace MaeMl.Interop;

/// <summary>
/// Copies official-named tensors into a module's parameters and buffers, matching names and shapes, resizing position
/// tables (<c>pos_embed</c>, <c>decoder_pos_embed</c>) to the module's grid, and reporting everything else.
/// Strict: nothing is copied unless the file matches fully (apart from what the caller declares expected).
/// </summary>
internal static class StateDictLoader
{
    static readonly HashSet<string> PositionTables = new(StringComparer.Ordinal) { "pos_embed", "decoder_pos_embed" };

    /// <param name="module">Target; its state-dict names are the official ones.</param>
    /// <param name="source">Tensors by official name (not disposed here).</param>
    /// <param name="report">Filled in; thrown inside a <see cref="StateDictMismatchException"/> when strict and incomplete.</param>
    /// <param name="strict">Throw, copying nothing, unless the file matches fully.</param>
    /// <param name="expectedMissing">Module tensors whose absence is expected (listed as initialised, never an error).</param>
    /// <param name="ignore">File tensors to leave out on purpose (listed as ignored, never an error).</param>
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, StateDictLoadReport report, bool strict,
                            Func<string, bool>? expectedMissing = null, Func<string, bool>? ignore = null)
    {
        var target = module.state_dict();
        var plan = new List<(string Name, Tensor Value, bool Interpolate)>();
        report.ModelTensors = target.Count;
        foreach (var (name, value) in source.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (ignore?.Invoke(name) == true) { report.Ignored.Add(name); continue; }
            if (!target.TryGetValue(name, out var dest)) { report.Unexpected.Add(name); continue; }
            if (dest.shape.SequenceEqual(value.shape)) { plan.Add((name, value, false)); continue; }
            if (PositionTables.Contains(name) && value.ndim == 3 && dest.ndim == 3 && value.shape[2] == dest.shape[2]
                && PositionEmbeddingInterpolation.GridSide(value.shape[1]) is not null && PositionEmbeddingInterpolation.GridSide(dest.shape[1]) is not null)
            {
                plan.Add((name, value, true));
                report.Interpolated.Add($"{name} [{string.Join(", ", value.shape)}] -> [{string.Join(", ", dest.shape)}] (bicubic)");
                continue;
            }
            report.Mismatched.Add(new ShapeMismatch(name, value.shape, dest.shape));
        }
        foreach (var name in target.Keys.Where(n => !source.ContainsKey(n) || ignore?.Invoke(n) == true))
            (expectedMissing?.Invoke(name) == true ? report.Initialised : report.Missing).Add(name);
        report.Matching = plan.Count;
        if (strict && !report.IsComplete) throw new StateDictMismatchException(report);

        foreach (var g in plan.Where(p => p.Value.dtype != target[p.Name].dtype).GroupBy(p => (From: p.Value.dtype, To: target[p.Name].dtype)))
            report.Notes.Add($"{g.Count()} tensor(s) converted from {g.Key.From} to {g.Key.To}");

        using var _ = no_grad();
        foreach (var (name, value, interpolate) in plan)
        {
            var dest = target[name];
            if (interpolate)
            {
                using var resized = PositionEmbeddingInterpolation.Interpolate(value, PositionEmbeddingInterpolation.GridSide(dest.shape[1])!.Value);
                dest.copy_(resized);
            }
            else dest.copy_(value);
            report.Loaded.Add(name);
        }
    }
}
