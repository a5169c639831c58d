using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace MaeMl.Tests.Onnx;

/// <summary>Encoder + classification head in ONNX: logits and probabilities match TorchSharp for both poolings.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class ClassifierOnnxExportTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void LogitsAndProbabilitiesMatchTorchSharp(bool globalPool)
    {
        torch.manual_seed(4);
        using var model = new VisionTransformer(new VitClassifierConfig(TestModels.Tiny, 5, globalPool));
        OnnxTestModels.Perturb(model);
        using (no_grad()) model.Head!.weight!.normal_(0, 0.5);
        model.eval();
        var path = Path.Combine(Path.GetTempPath(), $"maeml-cls-{Guid.NewGuid():N}.onnx");
        try
        {
            VitEncoderOnnxExporter.ExportClassifier(model, path);
            using var pixels = OnnxTestModels.RandomPixels(3, 16, seed: 2);
            using var scope = NewDisposeScope();
            var mean = tensor(ImageNetNormalization.Mean).view(1, 3, 1, 1);
            var std = tensor(ImageNetNormalization.Std).view(1, 3, 1, 1);
            Tensor logits;
            using (no_grad()) logits = model.forward((pixels / 255f - mean) / std);
            using var session = new InferenceSession(path);
            var input = new DenseTensor(OnnxTestModels.ToArray(pixels), [3, 3, 16, 16]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(EncoderOnnxNames.Pixels, input)], [EncoderOnnxNames.Logits, EncoderOnnxNames.Probabilities]);
            var onnxLogits = results.First(r => r.Name == EncoderOnnxNames.Logits).AsTensor<float>();
            Assert.Equal(new[] { 3, 5 }, onnxLogits.Dimensions.ToArray());
            Assert.InRange(OnnxTestModels.MaxAbsDiff(logits, onnxLogits.ToArray()), 0, 1e-4);
            var probs = results.First(r => r.Name == EncoderOnnxNames.Probabilities).AsTensor<float>().ToArray();
            Assert.InRange(OnnxTestModels.MaxAbsDiff(logits.softmax(-1), probs), 0, 1e-5);
            var info = EncoderOnnxModelInfo.Read(path);   // still a valid encoder export (the head's pooling is an output)
            Assert.Contains(globalPool ? EncoderPooling.Mean : EncoderPooling.Cls, info.Outputs.Keys);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ExportingAHeadFromEncoderWeightsIsAClearError()
    {
        using var mae = OnnxTestModels.RandomMae();
        var e = Assert.Throws<ArgumentException>(() => VitEncoderOnnxExporter.Build(mae.state_dict(), mae.Config, new VitEncoderOnnxOptions { IncludeHead = true }));
        Assert.Contains("head", e.Message);
    }
}
