using MaeMl.Checkpoints;
using MaeMl.Cli;
using MaeMl.Model;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary><c>maeml finetune</c>, <c>linprobe</c> and <c>eval</c> in-process through <see cref="Program.Main"/>.</summary>
[Collection("InteropCliConsole")]
public class FinetuneCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void FinetuneLinprobeAndEvalFromTheCommandLine()
    {
        var root = TestImages.TempDir("cli-ft");
        string train = Path.Combine(root, "train"), val = Path.Combine(root, "val"), pretrained = Path.Combine(root, "pre.maeml");
        TestImages.Write(train, 12, size: 16, classes: 2, seed: 1);
        TestImages.Write(val, 6, size: 16, classes: 2, seed: 2);
        TorchSharp.torch.manual_seed(0);
        using (var mae = new MaskedAutoencoderViT(TestModels.Tiny))
            MaeCheckpoint.Save(pretrained, mae);

        var ft = Run("finetune", "--train", train, "--val", val, "--out", Path.Combine(root, "ft"), "--weights", pretrained, "--epochs", "1",
            "--batch-size", "4", "--warmup-epochs", "0.5", "--randaug", "1x5", "--threads", "1");
        Assert.True(ft.Code == 0, ft.Err + ft.Out);
        Assert.Contains("top-1", ft.Out);
        var checkpoint = Path.Combine(root, "ft", "checkpoint-last.maeml");

        var eval = Run("eval", "--weights", checkpoint, "--val", val, "--out", Path.Combine(root, "eval.json"));
        Assert.True(eval.Code == 0, eval.Err + eval.Out);
        Assert.Contains("confusion matrix", eval.Out);
        Assert.True(File.Exists(Path.Combine(root, "eval.json")));

        var lp = Run("linprobe", "--train", train, "--val", val, "--out", Path.Combine(root, "lp"), "--weights", pretrained, "--epochs", "3", "--batch-size", "4", "--eval-crop-pct", "1");
        Assert.True(lp.Code == 0, lp.Err + lp.Out);
        Assert.True(File.Exists(Path.Combine(root, "lp", "checkpoint-linprobe.maeml")));

        var bad = Run("finetune", "--train", train, "--out", Path.Combine(root, "x"));
        Assert.Equal(2, bad.Code);
        Assert.Contains("--weights", bad.Err);
        var single = Run("finetune", "--train", Path.Combine(train, "class0"), "--out", Path.Combine(root, "y"), "--weights", pretrained);
        Assert.Equal(2, single.Code);
        var wrongClasses = Run("eval", "--weights", checkpoint, "--val", root);
        Assert.Equal(2, wrongClasses.Code);

        // the shipped classifier by name (found in the repository's pretrained/, a parent of the test's folder) on the bundled test images
        var shipped = Run("eval", "--weights", "cifar10-vit-tiny-finetuned", "--val", Path.Combine(TestModels.RepoRoot(), "samples", "data", "cifar10-mini", "test"));
        Assert.True(shipped.Code == 0, shipped.Err + shipped.Out);
        Assert.Contains("cifar10-vit-tiny-finetuned.maeml on 100 images", shipped.Out);
    }
}
