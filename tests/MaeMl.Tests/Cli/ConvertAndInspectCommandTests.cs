using MaeMl.Checkpoints;
using MaeMl.Cli;
using MaeMl.Interop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Cli;

/// <summary>Tests that redirect the process-wide console run alone.</summary>
[CollectionDefinition("InteropCliConsole", DisableParallelization = true)]
public sealed class InteropCliConsoleCollection;

/// <summary><c>maeml convert</c> and <c>maeml inspect</c>, run in-process through <see cref="Program.Main"/>.</summary>
[Collection("InteropCliConsole")]
public class ConvertAndInspectCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void ConvertsOfficialPthToSafetensorsToMaeMlAndBackBitExactly()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        var official = OfficialFixture.PathOf("checkpoint-full.pth");
        string st = Path.Combine(dir, "model.safetensors"), hf = Path.Combine(dir, "hf.safetensors"),
               maeml = Path.Combine(dir, "model.maeml"), pth = Path.Combine(dir, "back.pth");

        Assert.Equal(0, Run("convert", "--weights", official, "--out", st).Code);
        Assert.Equal(0, Run("convert", "--weights", st, "--out", hf, "--naming", "hf").Code);
        var toMaeml = Run("convert", "--weights", hf, "--out", maeml, "--heads", "2", "--decoder-heads", "2");
        Assert.True(toMaeml.Code == 0, toMaeml.Err);
        Assert.Contains("loaded 50 of the model's 50 tensors", toMaeml.Out);
        Assert.Equal(0, Run("convert", "--weights", maeml, "--out", pth).Code);

        Assert.Equal(OfficialFixture.Config, MaeCheckpoint.ReadHeader(maeml).Config);
        var back = PyTorchCheckpointFile.Read(pth);
        Assert.Equal("model", back.Key);
        var reference = OfficialFixture.StateDict();
        Assert.Equal(reference.Keys.Order(), back.StateDict.Keys.Order());
        foreach (var (name, value) in reference) Assert.True(OfficialFixture.Identical(value, back.StateDict[name]), name);
    }

    [Fact]
    public void ConvertsAFineTunedClassifierToAnotherResolution()
    {
        var dir = TempDir.Create();
        var source = Path.Combine(AppContext.BaseDirectory, "Fixtures", "pytorch-checkpoints", "finetuned.pth");
        var target = Path.Combine(dir, "finetuned-24.safetensors");
        var (code, output, err) = Run("convert", "--weights", source, "--out", target, "--heads", "2", "--image-size", "24");
        Assert.True(code == 0, err);
        Assert.Contains("pos_embed [1, 17, 32] -> [1, 37, 32]", output);
        using var vit = MaeModelFile.LoadClassifier(target, new MaeLoadOptions { NumHeads = 2 });
        Assert.Equal(24, vit.Config.Encoder.ImageSize);
        Assert.Equal(10, vit.Config.NumClasses);
    }

    [Fact]
    public void InspectListsTensorsAndTheInferredConfiguration()
    {
        var path = OfficialFixture.PathOf("checkpoint-full.pth");
        var (code, output, _) = Run("inspect", path, "--heads", "2", "--decoder-heads", "2");
        Assert.Equal(0, code);
        Assert.Contains("PyTorch, Official names, 50 tensors", output);
        Assert.Contains("state dict under 'model'", output);
        Assert.Matches(@"patch_embed\.proj\.weight\s+Float32\s+\[32, 3, 4, 4\]", output);
        Assert.Contains("configuration: img 16, patch 4, channels 3, encoder 32x2 (2 heads), mlp ratio 4, decoder 16x1 (2 heads)", output);

        (code, output, _) = Run("inspect", OfficialFixture.PathOf("checkpoint-encoder.pth"));
        Assert.Equal(0, code);
        Assert.Contains("shapes: img 16, patch 4, encoder 32x2", output);
        Assert.Contains("attention heads cannot be read from tensor shapes", output);
    }

    [Fact]
    public void ErrorsAreOneLineAndNameTheFile()
    {
        var dir = TempDir.Create();
        var missing = Path.Combine(dir, "nope.pth");
        var (code, _, err) = Run("inspect", missing);
        Assert.Equal(2, code);
        Assert.StartsWith("maeml: ", err);
        Assert.Contains("nope.pth", err);
        Assert.Single(err.Trim().Split('\n'));

        (code, _, err) = Run("convert", "--weights", OfficialFixture.PathOf("checkpoint-encoder.pth"), "--out", Path.Combine(dir, "e.maeml"), "--heads", "2");
        Assert.Equal(2, code);
        Assert.Contains("--encoder-only", err);
    }
}
