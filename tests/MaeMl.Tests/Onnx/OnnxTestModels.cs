using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Tests.Onnx;

/// <summary>Tiny random models and the TorchSharp reference features the ONNX graphs must reproduce.</summary>
public static class OnnxTestModels
{
    /// <summary>A MAE with random weights, its LayerNorms and biases perturbed so they are exercised too.</summary>
    public static MaskedAutoencoderViT RandomMae(MaeConfig? config = null, int seed = 0)
    {
        torch.manual_seed(seed);
        var model = new MaskedAutoencoderViT(config ?? TestModels.Tiny);
        Perturb(model);
        model.eval();
        return model;
    }

    public static void Perturb(nn.Module module)
    {
        using var _ = no_grad();
        foreach (var (name, p) in module.named_parameters())
            if (name.EndsWith("bias") || name.Contains("norm")) p.add_(randn_like(p) * 0.1);
    }

    /// <summary>Random pixels 0..255 [N, 3, S, S] (integers, as from decoded images).</summary>
    public static Tensor RandomPixels(int n, int size, int seed = 1)
    {
        var g = new Generator((ulong)seed);
        return randint(0, 256, [n, 3, size, size], generator: g).to(ScalarType.Float32);
    }

    /// <summary>What the exported preprocessing computes: (x / 255 - mean) / std.</summary>
    public static Tensor Normalize(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var mean = tensor(ImageNetNormalization.Mean).view(1, 3, 1, 1);
        var std = tensor(ImageNetNormalization.Std).view(1, 3, 1, 1);
        return ((pixels / 255 - mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>TorchSharp reference of each pooling for a MAE model.</summary>
    public static Tensor Reference(MaskedAutoencoderViT model, Tensor pixels, EncoderPooling pooling)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var tokens = model.ForwardFeatures(Normalize(pixels));
        var result = pooling switch
        {
            EncoderPooling.Cls => tokens[.., 0],
            EncoderPooling.Mean => tokens[.., 1..].mean([1]),
            _ => tokens,
        };
        return result.contiguous().MoveToOuterDisposeScope();
    }

    public static float MaxAbsDiff(Tensor expected, float[] actual)
    {
        using var flat = expected.contiguous().flatten();
        var e = flat.data<float>().ToArray();
        if (e.Length != actual.Length) throw new InvalidOperationException($"Length {actual.Length}, expected {e.Length}");
        return e.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
    }

    public static float[] ToArray(Tensor t)
    {
        using var c = t.contiguous();
        return c.data<float>().ToArray();
    }
}
