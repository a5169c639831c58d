using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Checkpoints;

/// <summary>A checkpoint was not written because a weight or an optimizer moment is NaN or infinite; the file on disk,
/// if any, is as it was. An <see cref="ArithmeticException"/>.</summary>
public sealed class NonFiniteWeightsException(string message) : ArithmeticException(message);

/// <summary>Finds NaN or infinite values in a model's weights and buffers and in an optimizer's state (moments), so
/// that a diverged run never replaces a good checkpoint with a poisoned one.</summary>
internal static class FiniteCheck
{
    /// <summary>A description of the first non-finite tensor (its name), or null when all are finite.</summary>
    public static string? FirstNonFinite(nn.Module model, OptimizerHelper? optimizer = null)
    {
        using var scope = NewDisposeScope();
        foreach (var (name, tensor) in model.state_dict())
            if (!IsFinite(tensor)) return $"model tensor '{name}'";
        if (optimizer is null) return null;
        var state = optimizer.state_dict();
        for (int i = 0; i < state.State.Count; i++)
        {
            var entry = state.State[i];
            foreach (var field in entry.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
                if (field.GetValue(entry) is Tensor t && !t.IsInvalid && !IsFinite(t))
                    return $"optimizer state '{field.Name.TrimStart('_')}' of parameter {i}";
        }
        return null;
    }

    static bool IsFinite(Tensor t) => !t.is_floating_point() && !t.is_complex() || t.numel() == 0 || torch.isfinite(t).all().item<bool>();
}
