using System.Text;
using System.Text.Json.Nodes;

namespace MaeMl.Evaluation;

/// <summary>
/// Accumulates classifier scores against true labels: top-1 and top-5 accuracy (as the official <c>engine_finetune.evaluate</c>),
/// mean loss when given, the confusion matrix (rows: true class, columns: predicted) and per-class accuracy (recall).
/// </summary>
public sealed class ClassificationMetrics
{
    readonly long[,] confusion;
    long top1, top5, count;
    double lossSum;
    long lossCount;

    /// <summary>Class names in label order; label i is <c>ClassNames[i]</c>.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>Number of classes (scores per row in <see cref="Add"/>).</summary>
    public int NumClasses => ClassNames.Count;

    /// <summary>Empty metrics over <paramref name="classNames"/> (at least one).</summary>
    public ClassificationMetrics(IReadOnlyList<string> classNames)
    {
        if (classNames.Count == 0) throw new ArgumentException("No classes");
        ClassNames = classNames;
        confusion = new long[classNames.Count, classNames.Count];
    }

    /// <summary>Adds a batch: <paramref name="scores"/> holds <c>labels.Length</c> rows of <see cref="NumClasses"/> logits or probabilities.</summary>
    public void Add(ReadOnlySpan<float> scores, ReadOnlySpan<int> labels, double? meanLoss = null)
    {
        int c = NumClasses;
        if (scores.Length != labels.Length * c) throw new ArgumentException($"{scores.Length} scores for {labels.Length} labels of {c} classes");
        for (int i = 0; i < labels.Length; i++)
        {
            var row = scores.Slice(i * c, c);
            int label = labels[i];
            if (label < 0 || label >= c) throw new ArgumentOutOfRangeException(nameof(labels), label, $"label outside 0..{c - 1}");
            int predicted = 0, higher = 0;
            for (int k = 0; k < c; k++)
            {
                if (row[k] > row[predicted]) predicted = k;
                if (row[k] > row[label] || (row[k] == row[label] && k < label)) higher++;
            }
            confusion[label, predicted]++;
            if (predicted == label) top1++;
            if (higher < 5) top5++;
            count++;
        }
        if (meanLoss is double loss) { lossSum += loss * labels.Length; lossCount += labels.Length; }
    }

    /// <summary>Samples added so far.</summary>
    public long Count => count;
    /// <summary>Fraction of samples whose highest score (first on ties) is the true class (<c>acc1</c>, as a fraction, not a percentage); NaN before any sample.</summary>
    public double Top1 => count == 0 ? double.NaN : (double)top1 / count;
    /// <summary>Fraction of samples whose true class is among the 5 highest scores (ties broken by lower index first; <c>acc5</c>); 1 with 5 or fewer classes, NaN before any sample.</summary>
    public double Top5 => count == 0 ? double.NaN : (double)top5 / count;
    /// <summary>Sample-weighted mean of the batch losses passed to <see cref="Add"/>; NaN when none was.</summary>
    public double MeanLoss => lossCount == 0 ? double.NaN : lossSum / lossCount;
    /// <summary>Samples of <paramref name="trueClass"/> predicted (top-1) as <paramref name="predictedClass"/>.</summary>
    public long Confusion(int trueClass, int predictedClass) => confusion[trueClass, predictedClass];

    /// <summary>Accuracy within each true class (NaN for a class with no samples).</summary>
    public double[] PerClassAccuracy()
    {
        var result = new double[NumClasses];
        for (int t = 0; t < NumClasses; t++)
        {
            long total = 0;
            for (int p = 0; p < NumClasses; p++) total += confusion[t, p];
            result[t] = total == 0 ? double.NaN : (double)confusion[t, t] / total;
        }
        return result;
    }

    /// <summary>Mean of the per-class accuracies of the classes seen.</summary>
    public double MacroAccuracy => PerClassAccuracy().Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();

    /// <summary>The metrics as JSON: <c>count</c>, <c>top1</c>, <c>top5</c>, <c>macro_accuracy</c>, <c>loss</c> (null when not given),
    /// <c>classes</c>, <c>per_class_accuracy</c> (null for unseen classes) and <c>confusion_matrix</c> (rows: true class).</summary>
    public JsonObject ToJson()
    {
        var perClass = PerClassAccuracy();
        var matrix = new JsonArray();
        for (int t = 0; t < NumClasses; t++)
            matrix.Add(new JsonArray(Enumerable.Range(0, NumClasses).Select(p => (JsonNode?)JsonValue.Create(confusion[t, p])).ToArray()));
        return new JsonObject
        {
            ["count"] = count, ["top1"] = Top1, ["top5"] = Top5, ["macro_accuracy"] = MacroAccuracy,
            ["loss"] = double.IsNaN(MeanLoss) ? null : MeanLoss,
            ["classes"] = new JsonArray(ClassNames.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            ["per_class_accuracy"] = new JsonArray(perClass.Select(a => (JsonNode?)(double.IsNaN(a) ? null : JsonValue.Create(a))).ToArray()),
            ["confusion_matrix"] = matrix,
        };
    }

    /// <summary>A text report: accuracies, per-class accuracy and the confusion matrix.</summary>
    public string Format()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"images {count}: top-1 {Top1:P2}, top-5 {Top5:P2}, mean per-class {MacroAccuracy:P2}" + (double.IsNaN(MeanLoss) ? "" : $", loss {MeanLoss:F4}"));
        int width = Math.Max(6, ClassNames.Max(n => n.Length));
        var perClass = PerClassAccuracy();
        sb.AppendLine("per-class accuracy:");
        for (int t = 0; t < NumClasses; t++) sb.AppendLine($"  {ClassNames[t].PadRight(width)} {(double.IsNaN(perClass[t]) ? "n/a" : perClass[t].ToString("P2"))}");
        sb.AppendLine("confusion matrix (rows: true, columns: predicted, in class order):");
        for (int t = 0; t < NumClasses; t++)
            sb.AppendLine($"  {ClassNames[t].PadRight(width)} " + string.Join(" ", Enumerable.Range(0, NumClasses).Select(p => confusion[t, p].ToString().PadLeft(5))));
        return sb.ToString();
    }
}
