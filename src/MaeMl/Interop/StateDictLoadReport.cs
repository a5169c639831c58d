using System.Text;

namespace MaeMl.Interop;

/// <summary>A tensor whose shape in the file differs from the model's.</summary>
public sealed record ShapeMismatch(string Name, long[] FileShape, long[] ModelShape)
{
    /// <summary>"name: file [shape], model [shape]".</summary>
    public override string ToString() => $"{Name}: file [{string.Join(", ", FileShape)}], model [{string.Join(", ", ModelShape)}]";
}

/// <summary>
/// What loading a weight file did: tensors loaded, missing (left at initialisation), unexpected (in the file, not used),
/// mis-shaped, resized position tables, and where the settings that shapes cannot tell came from.
/// <see cref="ToString"/> is the readable report.
/// </summary>
public sealed class StateDictLoadReport(string file)
{
    /// <summary>The weights file the report is about.</summary>
    public string File { get; } = file;
    /// <summary>Model tensors copied from the file.</summary>
    public List<string> Loaded { get; } = new();
    /// <summary>Model tensors the file lacks: left at their initialisation.</summary>
    public List<string> Missing { get; } = new();
    /// <summary>Missing tensors that were expected to be (a new classification head, the decoder of an encoder-only file): not an error.</summary>
    public List<string> Initialised { get; } = new();
    /// <summary>File tensors the model has no place for: not loaded.</summary>
    public List<string> Unexpected { get; } = new();
    /// <summary>File tensors left out on purpose (a decoder when building a classifier, a replaced head): not an error.</summary>
    public List<string> Ignored { get; } = new();
    /// <summary>Tensors present in both with different shapes: not loaded.</summary>
    public List<ShapeMismatch> Mismatched { get; } = new();
    /// <summary>Position tables resized to the model's grid.</summary>
    public List<string> Interpolated { get; } = new();
    /// <summary>Where settings came from (heads, format, naming).</summary>
    public List<string> Notes { get; } = new();
    /// <summary>Tensors in the model's state dict.</summary>
    public int ModelTensors { get; set; }
    /// <summary>Model tensors the file has with a usable shape (all loaded unless strict loading refused the file).</summary>
    public int Matching { get; set; }

    /// <summary>True when nothing is missing, unexpected or mis-shaped (what strict loading requires).</summary>
    public bool IsComplete => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <summary>The report in words: what loaded, and every missing, unexpected and mismatched tensor.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(Loaded.Count == 0 && Matching > 0
            ? $"'{File}': nothing loaded; {Matching} of the model's {ModelTensors} tensors match"
            : $"'{File}': loaded {Loaded.Count} of the model's {ModelTensors} tensors");
        foreach (var note in Notes) sb.Append($"\n  {note}");
        void List(string title, IReadOnlyCollection<string> items)
        {
            if (items.Count > 0) sb.Append($"\n  {title} ({items.Count}): {string.Join(", ", Compact(items))}");
        }
        List("missing from the file, left at initialisation", Missing);
        List("initialised (expected to be absent)", Initialised);
        List("unexpected in the file, not loaded", Unexpected);
        List("ignored", Ignored);
        if (Mismatched.Count > 0) sb.Append($"\n  shape mismatch ({Mismatched.Count}): {string.Join("; ", Mismatched)}");
        List("position table interpolated", Interpolated);
        return sb.ToString();
    }

    /// <summary>Long lists collapse repeated blocks: <c>decoder_blocks.* (96)</c> instead of 96 names.</summary>
    static IEnumerable<string> Compact(IReadOnlyCollection<string> names)
    {
        if (names.Count <= 12) return names;
        return names.GroupBy(n =>
            {
                var parts = n.Split('.');
                int i = Array.FindIndex(parts, p => p.Length > 0 && p.All(char.IsAsciiDigit));
                return i > 0 ? string.Join('.', parts[..i]) + ".*" : n;
            })
            .Select(g => g.Count() == 1 ? g.First() : $"{g.Key} ({g.Count()})");
    }
}

/// <summary>Strict loading found missing, unexpected or mis-shaped tensors. <see cref="Report"/> lists them all.</summary>
public sealed class StateDictMismatchException(StateDictLoadReport report)
    : IOException($"{report}\nThe file does not match the model (strict loading). Pass non-strict options to load what matches.")
{
    /// <summary>What matched and what did not.</summary>
    public StateDictLoadReport Report { get; } = report;
}
