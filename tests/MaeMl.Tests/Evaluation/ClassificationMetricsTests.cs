using MaeMl.Evaluation;
using Xunit;

namespace MaeMl.Tests.Evaluation;

public class ClassificationMetricsTests
{
    [Fact]
    public void CountsTop1Top5ConfusionAndPerClassAccuracy()
    {
        var names = Enumerable.Range(0, 7).Select(i => $"c{i}").ToList();
        var m = new ClassificationMetrics(names);
        // row 0: label 0 predicted 0; row 1: label 1, predicted 6, label ranked 2nd; row 2: label 2 ranked last
        var scores = new float[3 * 7];
        scores[0 * 7 + 0] = 5;
        scores[1 * 7 + 6] = 9; scores[1 * 7 + 1] = 8;
        for (int k = 0; k < 7; k++) scores[2 * 7 + k] = k == 2 ? -1 : k;
        m.Add(scores, new[] { 0, 1, 2 }, meanLoss: 0.5);
        Assert.Equal(3, m.Count);
        Assert.Equal(1.0 / 3, m.Top1, 12);
        Assert.Equal(2.0 / 3, m.Top5, 12);
        Assert.Equal(1, m.Confusion(1, 6));
        Assert.Equal(1, m.Confusion(2, 6));
        Assert.Equal(0.5, m.MeanLoss, 12);
        var perClass = m.PerClassAccuracy();
        Assert.Equal(1.0, perClass[0]);
        Assert.Equal(0.0, perClass[1]);
        Assert.True(double.IsNaN(perClass[3]));
        Assert.Equal(1.0 / 3, m.MacroAccuracy, 12);
        var json = m.ToJson();
        Assert.Equal(7, json["confusion_matrix"]!.AsArray().Count);
        Assert.Contains("top-1 33.33", m.Format().Replace(",", "."));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Add(new float[7], new[] { 9 }));
    }
}
