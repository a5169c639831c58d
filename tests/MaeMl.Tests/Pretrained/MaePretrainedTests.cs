using MaeMl.Pretrained;
using Xunit;

namespace MaeMl.Tests.Pretrained;

/// <summary>Tests that change the current folder or environment variables run alone.</summary>
[CollectionDefinition("ProcessWideState", DisableParallelization = true)]
public sealed class ProcessWideStateCollection;

[Collection("ProcessWideState")]
public class MaePretrainedTests
{
    static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MaeMl.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("repository root (MaeMl.sln) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void MissingShippedWeightsFailWithWhatToDoAndMaePretrainedFindsThem()
    {
        // the test project imports MaeMl.targets without MaeMlCopyPretrained: the weights are not copied next to it
        Assert.False(File.Exists(Path.Combine(AppContext.BaseDirectory, "pretrained", "cifar10-vit-tiny.maeml")));
        var repoPretrained = Path.Combine(RepoRoot(), "pretrained");
        var (cwd, env) = (Directory.GetCurrentDirectory(), Environment.GetEnvironmentVariable("MAEML_PRETRAINED"));
        var empty = Directory.CreateTempSubdirectory("maeml-no-weights-").FullName;
        try
        {
            Directory.SetCurrentDirectory(empty);          // outside the repository: no pretrained/ in any parent
            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", empty);
            var e = Assert.Throws<FileNotFoundException>(() => MaePretrained.Load("cifar10-vit-tiny"));
            Assert.Contains("cifar10-vit-tiny.maeml", e.Message);
            Assert.Contains("<MaeMlCopyPretrained>true</MaeMlCopyPretrained>", e.Message);
            Assert.Contains("MAEML_PRETRAINED", e.Message);
            Assert.Throws<FileNotFoundException>(() => MaePretrained.EncoderOnnxPath("cifar10-vit-tiny"));

            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", repoPretrained);
            // the encoder ONNX is not shipped: exported from the weights at first use into the cache, then reused
            var onnx = MaePretrained.EncoderOnnxPath("cifar10-vit-tiny");
            Assert.True(File.Exists(onnx), onnx);
            Assert.Equal(File.GetLastWriteTimeUtc(onnx), File.GetLastWriteTimeUtc(MaePretrained.EncoderOnnxPath("cifar10-vit-tiny")));
            Assert.Equal(192, MaeMl.Onnx.EncoderOnnxModelInfo.Read(onnx).OutputSize(MaeMl.Onnx.EncoderPooling.Mean));
            using var mae = MaePretrained.Load("cifar10-vit-tiny");
            Assert.Equal(192, mae.Config.EmbedDim);
        }
        finally
        {
            Directory.SetCurrentDirectory(cwd);
            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", env);
            Directory.Delete(empty, recursive: true);
        }
    }
}
