using MaeMl.Model;
using MaeMl.Training;
using Xunit;

namespace MaeMl.Tests.Training;

/// <summary>Auto is decided by measuring this model on this machine, and the decision is cached.</summary>
[Collection("TorchGlobalRng")]
public sealed class PrecisionProbeTests
{
    [Fact]
    public void AutoMeasuresOnceAndCachesTheFasterPrecision()
    {
        var cache = TestImages.TempDir("precision-cache");
        var previous = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        Environment.SetEnvironmentVariable("XDG_CACHE_HOME", cache);
        try
        {
            var config = TestModels.Tiny with { Depth = 1 };
            var log = new List<string>();
            var first = PrecisionProbe.Resolve(TrainingPrecision.Auto, config, 8, log.Add);
            Assert.NotEqual(TrainingPrecision.Auto, first);
            Assert.Equal(TrainingPrecision.BFloat16, PrecisionProbe.Resolve(TrainingPrecision.BFloat16, config, 8));
            if (!CpuFeatures.HasNativeBFloat16) { Assert.Equal(TrainingPrecision.Float32, first); return; }
            Assert.Contains("measured now", Assert.Single(log));
            Assert.True(File.Exists(Path.Combine(cache, "maeml", "precision.json")));
            var second = PrecisionProbe.Resolve(TrainingPrecision.Auto, config, 8, log.Add);
            Assert.Equal(first, second);
            Assert.Contains("measured earlier", log[1]);
        }
        finally { Environment.SetEnvironmentVariable("XDG_CACHE_HOME", previous); }
    }

    /// <summary>The alternated measurement times both designs on one model, in both precisions, and each timing's parts fit in it.</summary>
    [Theory]
    [InlineData(TrainingPrecision.Float32)]
    [InlineData(TrainingPrecision.BFloat16)]
    public void InterleavedMeasurementTimesBothDesigns(TrainingPrecision precision)
    {
        var (mae, full) = PrecisionProbe.MeasureInterleaved(TestModels.Tiny, 4, precision, warmup: 1, steps: 2);
        foreach (var t in new[] { mae, full })
        {
            Assert.True(double.IsFinite(t.ImagesPerSecond) && t.ImagesPerSecond > 0, $"{t}");
            Assert.InRange(t.OptimizerShare, 1e-9, 1.0);
            Assert.InRange(t.OptimizerShare + t.CopyShare, 0.0, 1.0);
            Assert.Equal(2, t.StepSeconds!.Count);   // one time per timed step, and together they are the rate's time
            Assert.Equal(4 * 2 / t.ImagesPerSecond, t.StepSeconds.Sum(), 6);
        }
        Assert.NotNull(PrecisionProbe.MedianPairedRatio(full, mae));
        Assert.Throws<ArgumentException>(() => PrecisionProbe.MeasureInterleaved(TestModels.Tiny, 4, TrainingPrecision.Auto, 1, 1));
    }

    [Fact]
    public void MedianPairedRatioDropsTheDisturbedPair()
    {
        PrecisionProbe.StepTiming T(params double[] s) => new(1, 0.1, 0, s);
        Assert.Equal(3.0, PrecisionProbe.MedianPairedRatio(T(2, 3, 30), T(1, 1, 1)));   // the third pair hit by other load
        Assert.Equal(2.5, PrecisionProbe.MedianPairedRatio(T(4, 6, 2, 12), T(2, 2, 1, 2)));   // ratios 2, 3, 2, 6: median of an even count
        Assert.Null(PrecisionProbe.MedianPairedRatio(new(1, 0.1), T(1)));
    }
}
