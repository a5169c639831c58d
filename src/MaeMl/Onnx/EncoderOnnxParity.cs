using MaeMl.Data;
using MaeMl.Model;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Onnx;

/// <summary>Checks an exported encoder against the TorchSharp model it came from on random images.</summary>
public static class EncoderOnnxParity
{
    /// <summary>
    /// Runs <paramref name="images"/> random 0..255 images through ONNX Runtime (CPU) and through
    /// <see cref="MaskedAutoencoderViT.ForwardFeatures"/> (after the same ImageNet normalisation) and returns the largest
    /// absolute difference per output the file has. The file must have been exported with preprocessing.
    /// </summary>
    public static IReadOnlyDictionary<EncoderPooling, float> MaxAbsDifference(MaskedAutoencoderViT model, string onnxFile, int images = 2, int seed = 0)
    {
        var info = EncoderOnnxModelInfo.Read(onnxFile);
        if (!info.IncludesPreprocessing) throw new ArgumentException($"'{onnxFile}' was exported without preprocessing", nameof(onnxFile));
        var c = model.Config;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ImageNetNormalization.RandomPixels(images, c.ImageSize, seed);
        var tokens = InEval(model, () => model.ForwardFeatures(ImageNetNormalization.Normalize(pixels)));
        var errors = new Dictionary<EncoderPooling, float>();
        foreach (var (name, a) in RunOnnx(onnxFile, info.InputName, pixels, info.Outputs.Keys.Select(EncoderOnnxNames.Output).ToArray()))
        {
            var pooling = EncoderOnnxNames.PoolingOf(name)!.Value;
            var expected = pooling switch
            {
                EncoderPooling.Cls => tokens[.., 0],
                EncoderPooling.Mean => tokens[.., 1..].mean([1]),
                _ => tokens,
            };
            var e = expected.contiguous().data<float>().ToArray();
            if (a.Length != e.Length) throw new InvalidDataException($"'{onnxFile}' output {name} has {a.Length} values, TorchSharp {e.Length}");
            errors[pooling] = e.Zip(a, (x, y) => Math.Abs(x - y)).Max();
        }
        return errors;
    }

    /// <summary>Runs <paramref name="images"/> random 0..255 images through a classifier export (ONNX Runtime, CPU) and through
    /// <paramref name="model"/> (after the same ImageNet normalisation) and returns the largest absolute difference of the logits.</summary>
    public static float ClassifierMaxAbsDifference(VisionTransformer model, string onnxFile, int images = 2, int seed = 0)
    {
        var c = model.Config.Encoder;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ImageNetNormalization.RandomPixels(images, c.ImageSize, seed);
        var logits = InEval(model, () => model.forward(ImageNetNormalization.Normalize(pixels))).contiguous().data<float>().ToArray();
        var a = RunOnnx(onnxFile, EncoderOnnxNames.Pixels, pixels, [EncoderOnnxNames.Logits]).Single().Values;
        if (a.Length != logits.Length) throw new InvalidDataException($"'{onnxFile}' gives {a.Length} logits, TorchSharp {logits.Length}");
        return logits.Zip(a, (x, y) => Math.Abs(x - y)).Max();
    }

    /// <summary><paramref name="forward"/> with <paramref name="model"/> in evaluation mode, its mode restored afterwards.</summary>
    static torch.Tensor InEval(nn.Module model, Func<torch.Tensor> forward)
    {
        var wasTraining = model.training;
        model.eval();
        try { return forward(); }
        finally { if (wasTraining) model.train(); }
    }

    /// <summary>The <paramref name="outputs"/> of <paramref name="onnxFile"/> (ONNX Runtime, CPU) for <paramref name="pixels"/> fed as <paramref name="input"/>.</summary>
    static List<(string Name, float[] Values)> RunOnnx(string onnxFile, string input, torch.Tensor pixels, string[] outputs)
    {
        using var session = new InferenceSession(onnxFile);
        var tensor = new DenseTensor<float>(pixels.contiguous().data<float>().ToArray(), pixels.shape.Select(d => (int)d).ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)], outputs);
        return results.Select(r => (r.Name, r.AsTensor<float>().ToArray())).ToList();
    }
}
