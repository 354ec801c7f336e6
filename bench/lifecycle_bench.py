"""Memory through the lifecycle: what configure takes and cleanup gives back, twice over.

The node runs in this process as in production (large-buffer malloc settings, the production
executor), starts unconfigured (autostart false), and is walked configure -> activate -> one goal
-> deactivate -> cleanup, twice. Resident memory (VmRSS) is read after each step. On CUDA the
same steps report torch's allocated and reserved GPU memory (cleanup empties torch's cache).
"""

import argparse
from collections.abc import Sequence
import json
import os

from bench import common


def _gpu_mb() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {'cuda_allocated': torch.cuda.memory_allocated() / 2**20,
            'cuda_reserved': torch.cuda.memory_reserved() / 2**20}


def run(checkpoint: str, device: str, dtype: str, cycles: int) -> list[dict[str, float]]:
    """Walk the node through `cycles` configure/cleanup cycles; memory after each step."""
    import cv2
    import numpy as np
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    from cosmos_reason_ros.ros.client import make_goal, ReasonClient
    from cosmos_reason_ros.ros.conversions import to_time
    from cosmos_reason_ros.ros.executor import ReasonExecutor
    from cosmos_reason_ros.ros.large_buffers import reuse_large_buffers
    from cosmos_reason_ros.ros.node import ReasonNode
    from cosmos_reason_ros.ros.spinning import spinning

    reuse_large_buffers()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(os.environ.get('ROS_DOMAIN_ID', '57')))
    node = ReasonNode(context=context, parameter_overrides=[
        Parameter('model', value=checkpoint), Parameter('device', value=device),
        Parameter('dtype', value=dtype),
        Parameter('autostart', value=False), Parameter('goal.max_new_tokens', value=8)])
    peer = rclpy.create_node('lifecycle_bench', context=context)
    client = ReasonClient(peer, '/cosmos_reason/reason')
    executor = ReasonExecutor(num_threads=node.executor_threads + 1, context=context)
    executor.add_node(node)
    executor.add_node(peer)
    jpeg = cv2.imencode('.jpg', np.zeros((360, 640, 3), np.uint8))[1].tobytes()
    images = [CompressedImage(header=Header(stamp=to_time(1.0 + 0.25 * i)), format='jpeg',
                              data=jpeg) for i in range(4)]
    rows: list[dict[str, float]] = []

    def record(step: str) -> None:
        row = {'step': step, **common.memory_mb(os.getpid()), **_gpu_mb()}
        rows.append(row)
        print(json.dumps(row), flush=True)

    with spinning(executor, timeout=10.0,
                  destroy=(client.destroy, peer.destroy_node, node.destroy_node),
                  context=context):
        assert client.wait_for_server(timeout=60.0)
        record('unconfigured')
        for cycle in range(cycles):
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.model_state
            record(f'configured {cycle + 1}')
            node.trigger_activate()
            result = client.ask(make_goal('What is shown?', compressed_images=images),
                                timeout=600.0)
            assert result.error_code == 0, result.message
            record(f'after a goal {cycle + 1}')
            node.trigger_deactivate()
            node.trigger_cleanup()
            record(f'cleaned up {cycle + 1}')
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.lifecycle_bench [--model {tiny,2b}]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--model', choices=('tiny', '2b'), default='tiny',
                        help='tiny: the test model (1.3 MB of weights: what configure adds is '
                             'torch and transformers themselves); 2b: random weights in bf16, '
                             'Cosmos-Reason2-2B shapes (4.9 GB)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cycles', type=int, default=2)
    args = parser.parse_args(argv)
    if args.model == 'tiny':
        from bench.overhead_bench import checkpoint_for

        checkpoint, dtype = checkpoint_for('tiny'), 'fp32'
    else:
        from bench.random_models import build_random_checkpoint

        checkpoint = build_random_checkpoint(common.CACHE / 'qwen3vl-2b-random-bf16', '2b',
                                             dtype='bfloat16')
        dtype = 'bf16'
    rows = run(str(checkpoint), args.device, dtype, args.cycles)
    base = rows[0]['VmRSS']
    print(f'\nmodel {args.model} on {args.device}: RSS MiB (above the unconfigured node)')
    for row in rows:
        gpu = ''
        if 'cuda_reserved' in row:
            gpu = (f"  cuda allocated {row['cuda_allocated']:.0f}, reserved "
                   f"{row['cuda_reserved']:.0f}")
        print(f"  {row['step']:<16} {row['VmRSS']:8.0f} ({row['VmRSS'] - base:+7.0f}){gpu}")
    configured = next(row for row in rows if row['step'] == 'after a goal 1')['VmRSS'] - base
    cleaned = next(row for row in rows if row['step'] == 'cleaned up 1')['VmRSS'] - base
    if configured > 0:
        print(f'cleanup gave back {configured - cleaned:.0f} of {configured:.0f} MiB '
              f'({(configured - cleaned) / configured:.0%})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
