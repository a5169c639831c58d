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
}
