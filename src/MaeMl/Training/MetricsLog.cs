using System.Text.Json;
using System.Text.Json.Nodes;

namespace MaeMl.Training;

/// <summary>Metrics as JSON lines (one object per step or epoch), appended and flushed as training goes.</summary>
internal sealed class MetricsLog : IDisposable
{
    readonly StreamWriter writer;
    /// <summary>The JSON-lines file (a run's <c>metrics.jsonl</c>).</summary>
    public string Path { get; }

    /// <summary>Opens the log (never through a symbolic link): a new run (<paramref name="resumeIter"/> null) starts it empty; a resumed
    /// one keeps only the entries before <paramref name="resumeIter"/> (later ones are work the resumed run redoes).</summary>
    public MetricsLog(string path, long? resumeIter = null)
    {
        Path = path;
        Checkpoints.RunFolder.RefuseLink(path);
        if (resumeIter is long keepBelow && File.Exists(path))
        {
            var kept = File.ReadAllLines(path).Where(line =>
            {
                try { return JsonNode.Parse(line)?["iter"]?.GetValue<long>() is long it && it < keepBelow; }
                catch (JsonException) { return false; }
            }).ToList();
            Checkpoints.RunFolder.WriteText(path, string.Concat(kept.Select(l => l + "\n")));
        }
        else if (resumeIter is null && File.Exists(path)) File.Delete(path);
        writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    /// <summary>Appends <paramref name="entry"/> as one line, flushed at once.</summary>
    public void Write(JsonObject entry) => writer.WriteLine(entry.ToJsonString());

    /// <summary>The (iter, loss, epoch_f) of every step entry of a metrics file, in file order.</summary>
    public static List<(long Iter, double Loss, double Epoch)> ReadLoss(string path) =>
        File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!).Where(n => n["type"]?.GetValue<string>() == "step")
            .Select(n => (n["iter"]!.GetValue<long>(), n["loss"]!.GetValue<double>(), n["epoch_f"]!.GetValue<double>())).ToList();

    /// <summary>Closes the file.</summary>
    public void Dispose() => writer.Dispose();

    /// <summary>Draws the per-step loss of a metrics.jsonl file against epochs (<see cref="Visualization.LossCurvePlot"/>).</summary>
    public static void PlotLoss(string metricsPath, string pngPath, string title) =>
        Visualization.LossCurvePlot.Write(ReadLoss(metricsPath).Select(p => (p.Epoch, p.Loss)).ToList(), pngPath, title);
}
